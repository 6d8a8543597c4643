//! The two encodings of the subscriber protocol. Every layer names them:
//! the router encodes once per format in use, a connection keeps the one it
//! negotiated, a command frame is parsed by the one it arrived in.

/// RFC 6455 opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// RFC 6455 opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;

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
            Format::Json => OP_TEXT,
            Format::MsgPack => OP_BINARY,
        }
    }
}
