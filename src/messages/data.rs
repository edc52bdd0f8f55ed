//! A whole data message.

use async_tungstenite::tungstenite::{Message, Utf8Bytes};
use bytes::Bytes;

/// A complete Text or Binary message, however many frames it arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataMessage {
    /// A text message (its UTF-8 was checked on arrival).
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl DataMessage {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        DataMessage::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        DataMessage::Binary(data.into())
    }

    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            DataMessage::Text(text) => text.as_bytes(),
            DataMessage::Binary(data) => data,
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<DataMessage> for Message {
    fn from(message: DataMessage) -> Self {
        match message {
            DataMessage::Text(text) => Message::Text(text),
            DataMessage::Binary(data) => Message::Binary(data),
        }
    }
}

impl From<String> for DataMessage {
    fn from(text: String) -> Self {
        DataMessage::Text(text.into())
    }
}

impl From<&str> for DataMessage {
    fn from(text: &str) -> Self {
        DataMessage::Text(text.into())
    }
}

impl From<Vec<u8>> for DataMessage {
    fn from(data: Vec<u8>) -> Self {
        DataMessage::Binary(data.into())
    }
}

impl From<Bytes> for DataMessage {
    fn from(data: Bytes) -> Self {
        DataMessage::Binary(data)
    }
}
