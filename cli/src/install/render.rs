//! One object as YAML, with comments: kubectl ignores them, and a reader of
//! the manifest sees why each privilege is there.

use anyhow::{Context, Result};
use serde_json::Value;

/// `object` as YAML; every line whose trimmed text is a key of `notes` gets
/// that note as a comment above it, at the same indentation.
pub fn yaml(object: &Value, notes: &[(&str, &str)]) -> Result<String> {
    let text = serde_yaml::to_string(object).context("rendering a manifest")?;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some((_, note)) = notes.iter().find(|(at, _)| *at == trimmed) {
            let indent = &line[..line.len() - trimmed.len()];
            for part in note.lines() {
                out.push_str(indent);
                out.push_str("# ");
                out.push_str(part);
                out.push('\n');
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}
