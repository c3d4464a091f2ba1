//! Instrumentation of one gRPC hop, on both of its ends.
//!
//! Every hop in rds-csi (sidecar → frontend, frontend → gateway, frontend → helper) is
//! wrapped on the server side by [`ServerHopLayer`] and on the client side by
//! [`ClientHopLayer`]. Together they give each call:
//! - metrics: a handled counter by gRPC code, a latency histogram and an in-flight gauge;
//! - a span, parented across processes through the W3C `traceparent` header;
//! - a request id (`x-request-id`), generated at the first hop and carried to the last,
//!   recorded on the span so that every log line of the call shows it;
//! - the caller's deadline, carried on to the next hop as `grpc-timeout`.
//!
//! Handlers never see any of this; they read [`CallContext::current`] when they need the
//! request id or the deadline.

mod call_context;
mod client;
mod grpc_call;
mod metrics;
mod observed_body;
mod propagation;
mod server;

pub use call_context::{CallContext, REQUEST_ID_HEADER};
pub use client::{ClientHop, ClientHopLayer};
pub use grpc_call::{GrpcMethod, code_label};
pub use metrics::HopMetrics;
pub use server::{ServerHop, ServerHopLayer};
