//! What a hop layer needs to know about one gRPC call: its service and method (from the
//! HTTP/2 path) and its final status code (from headers or trailers).

use http::HeaderMap;
use tonic::Code;

/// Longest method or service name recorded as a label; longer ones are `unknown`.
const MAX_NAME: usize = 128;

/// The service and method of a call, ready to be used as metric labels and span attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcMethod {
    pub service: String,
    pub method: String,
}

impl GrpcMethod {
    /// Splits `/package.Service/Method`. Paths that are not of that shape, or whose service
    /// is not one this hop serves, are recorded as `unknown` so that a client cannot grow
    /// the label set without bound.
    pub fn from_path(path: &str, known_services: &[&str]) -> Self {
        let unknown = || GrpcMethod {
            service: "unknown".into(),
            method: "unknown".into(),
        };
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return unknown();
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_NAME
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        let service_known = known_services.is_empty() || known_services.contains(&service);
        if !service_known || !name_ok(service) || !name_ok(method) || method.contains('.') {
            return unknown();
        }
        GrpcMethod {
            service: service.to_string(),
            method: method.to_string(),
        }
    }

    /// `package.Service/Method`, the conventional span name of a gRPC call.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.service, self.method)
    }
}

/// The `grpc-status` carried in a header map (the trailers, or the headers of a
/// trailers-only response). `None` when the map has no status.
pub(crate) fn status_in(headers: &HeaderMap) -> Option<Code> {
    let raw = headers.get("grpc-status")?;
    let n: i32 = raw.to_str().ok()?.trim().parse().ok()?;
    Some(Code::from_i32(n))
}

/// The label value used for a gRPC code, in the spelling the gRPC ecosystem's
/// Prometheus integrations use (`OK`, `InvalidArgument`, ...).
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths() {
        let m = GrpcMethod::from_path("/csi.v1.Identity/Probe", &["csi.v1.Identity"]);
        assert_eq!(m.service, "csi.v1.Identity");
        assert_eq!(m.method, "Probe");
        assert_eq!(m.full_name(), "csi.v1.Identity/Probe");
    }

    #[test]
    fn unknown_services_and_odd_paths_collapse() {
        for p in [
            "/evil.Service/Probe",
            "no-slash",
            "/csi.v1.Identity/",
            "/csi.v1.Identity/a/b",
            "/csi.v1.Identity/Pr obe",
        ] {
            let m = GrpcMethod::from_path(p, &["csi.v1.Identity"]);
            assert_eq!(m.service, "unknown", "{p}");
        }
        let long = format!("/csi.v1.Identity/{}", "A".repeat(500));
        assert_eq!(GrpcMethod::from_path(&long, &[]).method, "unknown");
    }

    #[test]
    fn reads_status_header() {
        let mut h = HeaderMap::new();
        assert_eq!(status_in(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_in(&h), Some(Code::NotFound));
        h.insert("grpc-status", http::HeaderValue::from_static("x"));
        assert_eq!(status_in(&h), None);
    }
}
