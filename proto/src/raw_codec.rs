//! gRPC codecs that leave one side of a call as its encoded bytes.
//!
//! A relay that rewrites a large answer field by field (the frontend's ListVolumes turns the
//! gateway's listing of every volume into the CSI listing) spent most of its CPU building
//! prost's owned messages only to take them apart again: one allocation per string on the
//! way in, and an encoding pass over owned structs on the way out. With these codecs the
//! request still goes through prost, while the answer stays bytes: [`BytesReplyCodec`] hands
//! a client the answer's protobuf encoding undecoded, and [`PreEncodedReplyCodec`] lets a
//! server send an answer it encoded itself. The framing (the five-byte gRPC message prefix,
//! compression, size limits) stays tonic's.

use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// A client's codec: the request `Req` is encoded by prost, the answer is returned as its
/// protobuf bytes, not decoded.
pub struct BytesReplyCodec<Req>(PhantomData<Req>);

impl<Req> Default for BytesReplyCodec<Req> {
    fn default() -> Self {
        BytesReplyCodec(PhantomData)
    }
}

impl<Req: prost::Message + Send + 'static> Codec for BytesReplyCodec<Req> {
    type Encode = Req;
    type Decode = Bytes;
    type Encoder = ProstEncoder<Req>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// A server's codec: the request `Req` is decoded by prost, the answer is bytes the handler
/// encoded already and are sent as they are.
pub struct PreEncodedReplyCodec<Req>(PhantomData<Req>);

impl<Req> Default for PreEncodedReplyCodec<Req> {
    fn default() -> Self {
        PreEncodedReplyCodec(PhantomData)
    }
}

impl<Req: prost::Message + Default + Send + 'static> Codec for PreEncodedReplyCodec<Req> {
    type Encode = Bytes;
    type Decode = Req;
    type Encoder = BytesEncoder;
    type Decoder = ProstDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// Takes a whole message's bytes out of tonic's buffer (a split, not a copy).
pub struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// Writes bytes that are a message's encoding already.
pub struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::gateway::{ListVolumesRequest, ListVolumesResponse, Volume};
    use prost::Message;

    /// The two codecs over one real unix-socket gRPC call: a server that answers with bytes
    /// it encoded, a client that receives them undecoded, and the bytes decode to the message.
    #[tokio::test]
    async fn pre_encoded_answers_arrive_as_the_same_bytes() {
        use std::convert::Infallible;
        use tonic::server::UnaryService;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.sock");
        let answer = ListVolumesResponse {
            volumes: vec![Volume {
                slot: "pvc-1".into(),
                size_bytes: 1 << 30,
                ..Default::default()
            }],
            next_token: "pvc-1".into(),
        };
        let encoded = Bytes::from(answer.encode_to_vec());

        #[derive(Clone)]
        struct Answer(Bytes);
        impl UnaryService<ListVolumesRequest> for Answer {
            type Response = Bytes;
            type Future = std::future::Ready<Result<tonic::Response<Bytes>, Status>>;
            fn call(&mut self, req: tonic::Request<ListVolumesRequest>) -> Self::Future {
                // The request was decoded by prost: its field is there.
                let reply = if req.get_ref().starting_token == "from" {
                    Ok(tonic::Response::new(self.0.clone()))
                } else {
                    Err(Status::invalid_argument(
                        "the request did not arrive decoded",
                    ))
                };
                std::future::ready(reply)
            }
        }
        #[derive(Clone)]
        struct Route(Bytes);
        impl tonic::server::NamedService for Route {
            const NAME: &'static str = "test.Raw";
        }
        impl tower::Service<http::Request<tonic::body::Body>> for Route {
            type Response = http::Response<tonic::body::Body>;
            type Error = Infallible;
            type Future =
                std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
            fn poll_ready(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Infallible>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
                let svc = Answer(self.0.clone());
                Box::pin(async move {
                    let mut grpc = tonic::server::Grpc::new(PreEncodedReplyCodec::<
                        ListVolumesRequest,
                    >::default());
                    Ok(grpc.unary(svc, req).await)
                })
            }
        }
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(Route(encoded.clone()))
                .serve_with_incoming(incoming),
        );

        let channel = crate::channel::connect_lazy(&crate::endpoint::Endpoint::Unix(path)).unwrap();
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.unwrap();
        let got = client
            .unary(
                tonic::Request::new(ListVolumesRequest {
                    starting_token: "from".into(),
                    ..Default::default()
                }),
                http::uri::PathAndQuery::from_static("/test.Raw/List"),
                BytesReplyCodec::<ListVolumesRequest>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, encoded);
        assert_eq!(ListVolumesResponse::decode(got).unwrap(), answer);
    }
}
