//! Output helpers shared by the commands: a buffered stdout, broken-pipe detection, notes on
//! stderr, human sizes and minimal JSON formatting.

use std::io::{self, BufWriter, StdoutLock, Write};

use bytesize::ByteSize;

/// A buffered, locked stdout. Commands that print one line per object write through this so
/// that a listing of millions of hashkeys is not one `write(2)` per line; callers must
/// `flush()` it explicitly, because the flush on drop swallows errors.
pub fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// True if the error was caused by writing to a pipe whose reader has gone away
/// (`rsdos ls | head -1`). Rust ignores `SIGPIPE`, so such a write fails with `EPIPE`
/// instead of killing the process; the command then stops and exits 0 without a message.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Prints a line to stderr unless `quiet`. Messages for people (notes, summaries) go to
/// stderr so that stdout stays machine-readable; a failing stderr is ignored, as there is
/// nowhere left to report it.
pub fn note(quiet: bool, message: std::fmt::Arguments<'_>) {
    if !quiet {
        let _ = writeln!(io::stderr().lock(), "{message}");
    }
}

/// Prints a line to stderr, even with `--quiet`: warnings must be seen. A failing stderr is
/// ignored, as there is nowhere left to report it.
pub fn warn(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{message}");
}

/// A byte count with binary units (`1.5 MiB`), as people read sizes.
pub fn human_size(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

/// A JSON string literal (quoted and escaped).
pub fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Writes a JSON object with its keys in the given order and two-space indentation, as
/// Python's `json.dumps(..., indent=2)` (which disk-objectstore's `dostore status` uses).
/// serde_json's `Map` sorts keys unless its `preserve_order` feature is on, and the field
/// order of `status` is part of its familiar shape, so the few objects we print are written
/// here. Values are already-formatted JSON.
pub struct JsonObject {
    fields: Vec<(String, JsonValue)>,
}

/// A value of a [`JsonObject`] field.
pub enum JsonValue {
    /// Preformatted JSON text (a number or a string literal).
    Raw(String),
    /// A nested object.
    Object(JsonObject),
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> Self {
        JsonObject { fields: Vec::new() }
    }

    /// Adds a string field.
    pub fn string(mut self, key: &str, value: &str) -> Self {
        self.fields
            .push((key.to_string(), JsonValue::Raw(json_string(value))));
        self
    }

    /// Adds a number field.
    pub fn number(mut self, key: &str, value: u64) -> Self {
        self.fields
            .push((key.to_string(), JsonValue::Raw(value.to_string())));
        self
    }

    /// Adds a field whose value is already JSON text (`null`, `true`, a number).
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.fields
            .push((key.to_string(), JsonValue::Raw(json.to_string())));
        self
    }

    /// Adds a nested object field.
    pub fn object(mut self, key: &str, value: JsonObject) -> Self {
        self.fields
            .push((key.to_string(), JsonValue::Object(value)));
        self
    }

    /// The indented JSON text, without a trailing newline.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write_at(&mut out, 0);
        out
    }

    fn write_at(&self, out: &mut String, depth: usize) {
        if self.fields.is_empty() {
            out.push_str("{}");
            return;
        }
        out.push_str("{\n");
        let inner = "  ".repeat(depth + 1);
        for (i, (key, value)) in self.fields.iter().enumerate() {
            out.push_str(&inner);
            out.push_str(&json_string(key));
            out.push_str(": ");
            match value {
                JsonValue::Raw(text) => out.push_str(text),
                JsonValue::Object(obj) => obj.write_at(out, depth + 1),
            }
            if i + 1 < self.fields.len() {
                out.push(',');
            }
            out.push('\n');
        }
        out.push_str(&"  ".repeat(depth));
        out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_object_keeps_order_and_escapes() {
        let json = JsonObject::new()
            .string("z", "a\"b")
            .object("a", JsonObject::new().number("n", 3))
            .object("e", JsonObject::new())
            .to_pretty();
        assert_eq!(
            json,
            "{\n  \"z\": \"a\\\"b\",\n  \"a\": {\n    \"n\": 3\n  },\n  \"e\": {}\n}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed["a"]["n"], 3);
    }

    #[test]
    fn broken_pipe_is_found_through_context() {
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing the listing");
        assert!(is_broken_pipe(&err));
        let other = anyhow::Error::from(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
    }

    #[test]
    fn human_size_uses_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
