//! Bytes on the wire: WebSocket frames, server events, client commands, and
//! the network publisher protocol (the one part of it that users reach, as
//! `tickcast::publish`).

pub mod command;
pub mod event;
pub mod frame;
pub mod publish;

/// The encoding a subscriber chose with its WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `tickcast.json`: text frames holding JSON (the default).
    Json,
    /// `tickcast.msgpack`: binary frames holding MessagePack maps with the same fields.
    MsgPack,
}

impl Format {
    /// How many formats there are; sizes the per-format arrays.
    pub const COUNT: usize = 2;
    /// Every format, in index order.
    pub const ALL: [Format; 2] = [Format::Json, Format::MsgPack];

    /// Position in per-format arrays.
    pub fn index(self) -> usize {
        match self {
            Format::Json => 0,
            Format::MsgPack => 1,
        }
    }

    /// The subprotocol name that selects this format.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Format::Json => "tickcast.json",
            Format::MsgPack => "tickcast.msgpack",
        }
    }

    /// The format for a subprotocol name, if it is one of ours.
    pub fn from_subprotocol(name: &str) -> Option<Format> {
        match name {
            "tickcast.json" => Some(Format::Json),
            "tickcast.msgpack" => Some(Format::MsgPack),
            _ => None,
        }
    }

    /// The WebSocket opcode of a data frame in this format.
    pub fn opcode(self) -> u8 {
        match self {
            Format::Json => frame::OP_TEXT,
            Format::MsgPack => frame::OP_BINARY,
        }
    }
}
