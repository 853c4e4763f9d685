//! Card verification: 券面AP, 入力補助AP and the JPKI signing certificate (issue 3). Pure code, no I/O.

/// Configuration of the card checks (`[card]` in the config).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct CardConfig {}
