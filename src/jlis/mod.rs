//! The J-LIS validity-check adapter: OCSP, CRL and a development-only static mode (issue 4).

/// Configuration of the validity checker (`[jlis]` in the config).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct JlisConfig {}
