//! A TCP relay between a node and a real Redis that can lose a writer's
//! replies on request: the replies to a pipeline Redis has run are dropped
//! and both sides closed, so the writer sees its connection lost after
//! Redis numbered (some of) its batch. That is the case exactly-once must
//! handle; a `CLIENT KILL` lands there only when it reaches Redis between
//! running a pipeline and writing its replies, a race of microseconds that
//! one machine loses in every one of a hundred tries (CI, session 18).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct ReplyCut {
    port: u16,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Cuts asked for and not yet made.
    wanted: AtomicUsize,
    /// Cuts made.
    done: AtomicUsize,
    stop: AtomicBool,
}

impl ReplyCut {
    /// Relays every connection made to `url()` to the Redis on
    /// `127.0.0.1:redis_port`.
    pub fn start(redis_port: u16) -> ReplyCut {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let s = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::Relaxed) {
                    break;
                }
                let (Ok(client), Ok(server)) =
                    (client, TcpStream::connect(("127.0.0.1", redis_port)))
                else {
                    continue;
                };
                relay(client, server, s.clone());
            }
        });
        ReplyCut { port, state }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The next replies to a writer's script calls (`:`, an integer) are
    /// lost and its connection closed (one cut, however often it is
    /// asked for before it is made).
    pub fn arm(&self) {
        self.state.wanted.store(1, Ordering::Relaxed);
    }

    /// A cut asked for is not made yet.
    pub fn armed(&self) -> bool {
        self.state.wanted.load(Ordering::Relaxed) > 0
    }

    /// No cut but those made already.
    pub fn disarm(&self) {
        self.state.wanted.store(0, Ordering::Relaxed);
    }

    pub fn cuts(&self) -> usize {
        self.state.done.load(Ordering::Relaxed)
    }
}

impl Drop for ReplyCut {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Two threads: requests up (marking a writer's connection by the name it
/// gives itself), replies down (cut when asked, on a writer's connection,
/// at a chunk of integer replies, which only script calls and `ZADD` in a
/// batch's pipeline give).
fn relay(client: TcpStream, server: TcpStream, state: Arc<State>) {
    let writer = Arc::new(AtomicBool::new(false));
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up_writer = writer.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = c_in.read(&mut buf) {
            if buf[..n].windows(16).any(|w| w == b"tickcast-writer-") {
                up_writer.store(true, Ordering::Relaxed);
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Both);
        let _ = c_in.shutdown(Shutdown::Both);
    });
    let (mut s_in, mut c_out) = (server, client);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = s_in.read(&mut buf) {
            let cut = writer.load(Ordering::Relaxed)
                && buf[0] == b':'
                && state
                    .wanted
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| w.checked_sub(1))
                    .is_ok();
            if cut {
                state.done.fetch_add(1, Ordering::Relaxed);
                break;
            }
            if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_out.shutdown(Shutdown::Both);
        let _ = s_in.shutdown(Shutdown::Both);
    });
}
