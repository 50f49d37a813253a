//! Label-constrained decoding: once the model has opened the string value of a JSON
//! `"label"` field, only tokens that keep the value on the way to one of the allowed
//! labels (and its closing quote) may be sampled. The model still chooses which label;
//! the mask only removes the ones outside the set, so an invented label cannot appear
//! there. Everything else in the output is unconstrained, and the judgement is still
//! validated afterwards.

/// How much generated text is kept to spot `"label": "` (the key, spaces, the colon).
const TAIL_BYTES: usize = 64;

pub struct LabelConstraint {
    /// Each allowed label followed by the closing quote.
    targets: Vec<Vec<u8>>,
    tail: Vec<u8>,
    /// Inside a label value: what has been written of it so far.
    in_value: Option<Vec<u8>>,
}

impl LabelConstraint {
    pub fn new(labels: &[String]) -> Self {
        Self {
            targets: labels
                .iter()
                .map(|l| {
                    let mut t = l.as_bytes().to_vec();
                    t.push(b'"');
                    t
                })
                .collect(),
            tail: Vec::new(),
            in_value: None,
        }
    }

    /// Whether the next token is constrained.
    pub fn active(&self) -> bool {
        self.in_value.is_some()
    }

    fn allows(&self, written: &[u8], piece: &[u8]) -> bool {
        if piece.is_empty() {
            return false;
        }
        self.targets.iter().any(|target| {
            let total = written.len() + piece.len();
            if total <= target.len() {
                // Still inside (or just closing) the label.
                target.starts_with(written) && target[written.len()..].starts_with(piece)
            } else {
                // The token closes the label and goes on (`",`): the part up to the quote
                // must complete it.
                target.starts_with(written) && piece.starts_with(&target[written.len()..])
            }
        })
    }

    /// Sets to -inf the logits of tokens that may not come next. Returns false (and
    /// masks nothing) when no token would be allowed, which a vocabulary without byte
    /// tokens could cause.
    pub fn mask(&self, logits: &mut [f32], pieces: &[Vec<u8>]) -> bool {
        let Some(written) = &self.in_value else {
            return true;
        };
        let allowed: Vec<bool> = pieces
            .iter()
            .take(logits.len())
            .map(|p| self.allows(written, p))
            .collect();
        if !allowed.iter().any(|&a| a) {
            return false;
        }
        for (logit, ok) in logits.iter_mut().zip(allowed) {
            if !ok {
                *logit = f32::NEG_INFINITY;
            }
        }
        // Ids past the tokenizer's vocabulary (padding rows of the output matrix).
        for logit in logits.iter_mut().skip(pieces.len()) {
            *logit = f32::NEG_INFINITY;
        }
        true
    }

    /// Feeds the bytes of the token just generated.
    pub fn advance(&mut self, piece: &[u8]) {
        if let Some(written) = &mut self.in_value {
            written.extend_from_slice(piece);
            if let Some(quote) = written.iter().position(|&b| b == b'"') {
                let after = written[quote + 1..].to_vec();
                self.in_value = None;
                self.tail.clear();
                self.tail.extend_from_slice(&after);
            }
            return;
        }
        self.tail.extend_from_slice(piece);
        if let Some(value_start) = label_value_start(&self.tail) {
            let written = self.tail[value_start..].to_vec();
            self.tail.clear();
            if written.contains(&b'"') {
                // Opened and closed within one token: nothing left to constrain.
                return;
            }
            self.in_value = Some(written);
            return;
        }
        if self.tail.len() > TAIL_BYTES {
            self.tail.drain(..self.tail.len() - TAIL_BYTES);
        }
    }
}

/// Where the value starts if `text` contains `"label"`, optional spaces, a colon,
/// optional spaces and an opening quote; the value is what follows.
fn label_value_start(text: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"label\"";
    let key_at = text.windows(KEY.len()).rposition(|w| w == KEY)?;
    let mut i = key_at + KEY.len();
    let skip_space = |i: &mut usize| {
        while *i < text.len() && text[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_space(&mut i);
    if text.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    skip_space(&mut i);
    if text.get(i) != Some(&b'"') {
        return None;
    }
    Some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vec<Vec<u8>> {
        [
            "\"label\"",
            ": \"",
            "happy",
            "hap",
            "py",
            "joy",
            "\"",
            "\",",
            "sad",
            "x",
            "",
            " \"h",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
    }

    fn allowed(c: &LabelConstraint) -> Vec<String> {
        let v = vocab();
        let mut logits = vec![0.0; v.len()];
        assert!(c.mask(&mut logits, &v));
        v.iter()
            .zip(logits)
            .filter(|(_, l)| l.is_finite())
            .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    #[test]
    fn only_allowed_labels_after_the_key() {
        let mut c = LabelConstraint::new(&["happy".into(), "sad".into()]);
        c.advance(b"{\"face_id\": 1, ");
        assert!(!c.active());
        c.advance(b"\"label\"");
        c.advance(b": \"");
        assert!(c.active());
        assert_eq!(allowed(&c), ["happy", "hap", "sad"]);
        c.advance(b"hap");
        assert_eq!(allowed(&c), ["py"]);
        c.advance(b"py");
        // Any token that starts with the closing quote: what follows it is free.
        assert_eq!(allowed(&c), ["\"label\"", "\"", "\","]);
        c.advance(b"\",");
        assert!(!c.active());
        let v = vocab();
        let mut logits = vec![1.0; v.len()];
        assert!(c.mask(&mut logits, &v));
        assert!(logits.iter().all(|l| *l == 1.0));
    }

    #[test]
    fn a_token_that_opens_the_value_counts_what_it_wrote() {
        let mut c = LabelConstraint::new(&["happy".into(), "sad".into()]);
        c.advance(b"\"label\":");
        c.advance(b" \"h");
        assert!(c.active());
        // Nothing in this vocabulary continues "h" to "happy": the mask steps aside.
        let v = vocab();
        let mut logits = vec![0.0; v.len()];
        assert!(!c.mask(&mut logits, &v));
        assert!(logits.iter().all(|l| *l == 0.0));
        let mut c = LabelConstraint::new(&["happy".into()]);
        c.advance(b"\"label\": \"hap");
        assert_eq!(allowed(&c), ["py"]);
    }

    #[test]
    fn the_key_elsewhere_or_without_a_string_value_is_ignored() {
        let mut c = LabelConstraint::new(&["happy".into()]);
        c.advance(b"the \"label\" field is ");
        assert!(!c.active());
        c.advance(b"\"label\": null");
        assert!(!c.active());
    }
}
