//! Bytes on the wire: WebSocket frames, server events, client commands, and
//! the network publisher protocol (the one part of it that users reach, as
//! `tickcast::publish`).

pub mod command;
mod command_object;
pub(crate) mod deflate;
pub mod event;
pub mod frame;
pub(crate) mod inbound;
pub mod publish;
