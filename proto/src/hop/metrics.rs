//! The Prometheus families a hop records into, registered once per process.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Latency buckets in seconds: fine below a millisecond (a local relay) up to the
/// minutes a slow appliance command may take.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];

/// One side (server or client) of the hop families.
#[derive(Clone)]
pub(crate) struct SideMetrics {
    pub handled: IntCounterVec,
    pub seconds: HistogramVec,
    pub in_flight: IntGaugeVec,
}

/// The server and client families of one process, labelled with its component name.
#[derive(Clone)]
pub struct HopMetrics {
    pub(crate) component: String,
    pub(crate) server: SideMetrics,
    pub(crate) client: SideMetrics,
}

impl HopMetrics {
    /// Registers `rds_csi_grpc_{server,client}_*` in `registry` for `component`.
    pub fn register(registry: &Registry, component: &str) -> Result<Self, prometheus::Error> {
        Ok(HopMetrics {
            component: component.to_string(),
            server: side(registry, "server", "handled by this process")?,
            client: side(registry, "client", "made by this process")?,
        })
    }
}

fn side(registry: &Registry, side: &str, what: &str) -> Result<SideMetrics, prometheus::Error> {
    let labels = ["component", "grpc_service", "grpc_method"];
    let handled = IntCounterVec::new(
        Opts::new(
            format!("rds_csi_grpc_{side}_handled_total"),
            format!("gRPC calls {what}, by final status code."),
        ),
        &["component", "grpc_service", "grpc_method", "grpc_code"],
    )?;
    let seconds = HistogramVec::new(
        HistogramOpts::new(
            format!("rds_csi_grpc_{side}_handling_seconds"),
            format!("Time from the start of a gRPC call {what} to its final status."),
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
        &labels,
    )?;
    let in_flight = IntGaugeVec::new(
        Opts::new(
            format!("rds_csi_grpc_{side}_in_flight"),
            format!("gRPC calls {what} that have started and not yet finished."),
        ),
        &labels,
    )?;
    registry.register(Box::new(handled.clone()))?;
    registry.register(Box::new(seconds.clone()))?;
    registry.register(Box::new(in_flight.clone()))?;
    Ok(SideMetrics {
        handled,
        seconds,
        in_flight,
    })
}
