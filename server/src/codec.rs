//! The gRPC codec of GraphService: prost's, except for what a message that does not decode
//! answers.
//!
//! tonic answers INTERNAL for a request that does not decode, as if the server were at
//! fault. Here it is the client's bad input: INVALID_ARGUMENT, and when the message nests
//! deeper than protobuf decoders allow (a property value inside too many lists or maps), the
//! message names the nesting limit every entrance shares.

use std::marker::PhantomData;

use prism_dataflows::limits::too_deep;
use prost::Message;
use tonic::codec::{DecodeBuf, Decoder};
use tonic::Status;

/// The codec the generated GraphService code uses (see `build.rs`).
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(PhantomData)
    }
}

/// Decodes one message; a failure is INVALID_ARGUMENT naming what is wrong.
#[derive(Debug, Clone)]
pub struct MessageDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| {
            if prism_connectors::codec::is_too_deep(&error) {
                Status::invalid_argument(format!("the message does not decode: {}", too_deep()))
            } else {
                Status::invalid_argument(format!("the message does not decode: {error}"))
            }
        })
    }
}
