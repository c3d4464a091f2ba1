//! Client channels to another component, instrumented as a hop.
//!
//! Channels connect lazily: a component starts and serves even when the component it
//! relays to is not up yet, and its readiness says so instead of a crash loop.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Uri};

use crate::endpoint::Endpoint;
use crate::hop::{ClientHop, ClientHopLayer, HopMetrics};

/// A channel wrapped in the client end of the hop instrumentation.
pub type HopChannel = ClientHop<Channel>;

/// Why a channel could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up a channel to {endpoint}: {source}")]
pub struct ChannelError {
    endpoint: String,
    source: tonic::transport::Error,
}

/// How long establishing a connection may take before a call fails with UNAVAILABLE.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A lazily connecting channel to `endpoint`.
pub fn connect_lazy(endpoint: &Endpoint) -> Result<Channel, ChannelError> {
    let wrap = |source| ChannelError {
        endpoint: endpoint.to_string(),
        source,
    };
    match endpoint {
        Endpoint::Unix(path) => {
            let path = path.clone();
            // The URI must parse but is not used: the connector dials the socket.
            let ep = tonic::transport::Endpoint::try_from("http://[::]:50051")
                .map_err(wrap)?
                .connect_timeout(CONNECT_TIMEOUT);
            Ok(
                ep.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                })),
            )
        }
        Endpoint::Tcp { .. } => {
            let uri = format!("http://{}", endpoint.authority().unwrap_or_default());
            let ep = tonic::transport::Endpoint::from_shared(uri)
                .map_err(wrap)?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true);
            Ok(ep.connect_lazy())
        }
    }
}

/// A lazily connecting, instrumented channel to `endpoint`.
pub fn instrumented(endpoint: &Endpoint, metrics: HopMetrics) -> Result<HopChannel, ChannelError> {
    let channel = connect_lazy(endpoint)?;
    Ok(tower::Layer::layer(&ClientHopLayer::new(metrics), channel))
}
