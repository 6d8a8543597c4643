//! A `/publish` connection spoken by hand, for the benchmarks: the upgrade,
//! then masked binary frames with a zero key (each payload goes as packed,
//! like a feed handler's own encoder), while a thread reads and drops the
//! acks so the server never waits on the benchmark.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;

pub struct RawPublisher {
    sock: TcpStream,
    drain: Option<JoinHandle<()>>,
    frame: Vec<u8>,
}

impl RawPublisher {
    pub fn connect(addr: SocketAddr, token: &str) -> RawPublisher {
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_nodelay(true).unwrap();
        write!(
            sock,
            "GET /publish HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            sock.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let mut reader = sock.try_clone().unwrap();
        let drain = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        });
        RawPublisher {
            sock,
            drain: Some(drain),
            frame: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sends one packed `/publish` payload (`tickcast::publish::encode`).
    pub fn send(&mut self, payload: &[u8]) {
        let frame = &mut self.frame;
        frame.clear();
        frame.push(0x82);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.sock.write_all(frame).unwrap();
    }
}

impl Drop for RawPublisher {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}
