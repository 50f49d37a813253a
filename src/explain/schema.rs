//! The JSON schema of an explanation's answer, built per request: the exact face ids in
//! order, labels from the request's set, numbers in their ranges, evidence keys from the
//! measurements the prompt carried, and every free-text field bounded, so that a model
//! decoding under it (candle, through llguidance) cannot loop, invent a face, a label or a
//! key, or leave the JSON open.
//!
//! The SoVTP paper's five stages are bounded fields before the judgements: `scene`,
//! `body`, `others`, `cues` and `check` (the self-correction).

use serde_json::{Value, json};

/// Longest text of one SoVTP stage, characters.
pub const STAGE_CHARS: usize = 90;
/// Longest text of the `cues` stage, characters.
pub const CUES_CHARS: usize = 140;
/// Longest rationale, characters.
pub const RATIONALE_CHARS: usize = 160;
/// Most evidence items per judgement.
pub const MAX_EVIDENCE: usize = 3;

/// What the answer is about.
pub struct AnswerShape<'a> {
    /// Faces to judge, in the order their judgements come.
    pub face_ids: &'a [u32],
    pub labels: &'a [String],
    /// For each face (same order), the keys its evidence may cite, grouped by the
    /// directions that apply to them.
    pub evidence_keys: &'a [Vec<(&'static [&'static str], Vec<String>)>],
}

/// The schema for `shape`.
pub fn answer_schema(shape: &AnswerShape) -> Value {
    let text = |max: usize| json!({"type": "string", "maxLength": max});
    let judgements: Vec<Value> = shape
        .face_ids
        .iter()
        .zip(shape.evidence_keys)
        .map(|(id, keys)| {
            let item = |directions: &[&str], keys: &[String]| {
                json!({
                    "type": "object",
                    "properties": {
                        "key": {"enum": keys},
                        "direction": {"enum": directions},
                    },
                    "required": ["key", "direction"],
                    "additionalProperties": false,
                })
            };
            let evidence = match keys.as_slice() {
                [] => json!({"type": "array", "maxItems": 0}),
                [(directions, keys)] => json!({
                    "type": "array",
                    "maxItems": MAX_EVIDENCE,
                    "items": item(directions, keys),
                }),
                groups => json!({
                    "type": "array",
                    "maxItems": MAX_EVIDENCE,
                    "items": {"anyOf": groups.iter().map(|(d, k)| item(d, k)).collect::<Vec<_>>()},
                }),
            };
            json!({
                "type": "object",
                "properties": {
                    "face_id": {"const": id},
                    "label": {"enum": shape.labels},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "valence": {"type": "number", "minimum": -1, "maximum": 1},
                    "arousal": {"type": "number", "minimum": 0, "maximum": 1},
                    "evidence": evidence,
                    "rationale": text(RATIONALE_CHARS),
                },
                "required": ["face_id", "label", "confidence", "valence", "arousal", "evidence", "rationale"],
                "additionalProperties": false,
            })
        })
        .collect();
    let n = shape.face_ids.len();
    json!({
        "type": "object",
        "properties": {
            "stages": {
                "type": "object",
                "properties": {
                    "scene": text(STAGE_CHARS),
                    "body": text(STAGE_CHARS),
                    "others": text(STAGE_CHARS),
                    "cues": text(CUES_CHARS),
                    "check": text(STAGE_CHARS),
                },
                "required": ["scene", "body", "others", "cues", "check"],
                "additionalProperties": false,
            },
            "judgements": {
                "type": "array",
                "prefixItems": judgements,
                "items": false,
                "minItems": n,
                "maxItems": n,
            },
        },
        "required": ["stages", "judgements"],
        "additionalProperties": false,
        // Compact JSON: no whitespace between tokens, so no token is spent on it and the
        // label fields read exactly `"label":"`.
        "x-guidance": {"whitespace_flexible": false},
    })
}

/// Tokens the longest answer this schema allows can take, for a default `max_tokens`:
/// text at about 3 characters per token, plus the keys, numbers and punctuation.
pub fn token_budget(faces: usize) -> u32 {
    let stages = (4 * STAGE_CHARS + CUES_CHARS) / 3 + 30;
    let per_face = RATIONALE_CHARS / 3 + MAX_EVIDENCE * 12 + 50;
    (stages + faces * per_face) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_names_exactly_the_faces_labels_and_keys_of_the_request() {
        let labels = vec!["happy".to_string(), "sad".to_string()];
        let au: &'static [&'static str] = &["present", "absent"];
        let keys = vec![vec![(au, vec!["AU12".to_string()])], vec![]];
        let schema = answer_schema(&AnswerShape {
            face_ids: &[3, 7],
            labels: &labels,
            evidence_keys: &keys,
        });
        let items = &schema["properties"]["judgements"]["prefixItems"];
        assert_eq!(items[0]["properties"]["face_id"]["const"], 3);
        assert_eq!(items[1]["properties"]["face_id"]["const"], 7);
        assert_eq!(
            items[0]["properties"]["label"]["enum"],
            json!(["happy", "sad"])
        );
        assert_eq!(
            items[0]["properties"]["evidence"]["items"]["properties"]["key"]["enum"],
            json!(["AU12"])
        );
        assert_eq!(
            items[0]["properties"]["evidence"]["items"]["properties"]["direction"]["enum"],
            json!(["present", "absent"])
        );
        // A face without measurements may cite nothing.
        assert_eq!(items[1]["properties"]["evidence"]["maxItems"], 0);
        assert_eq!(schema["properties"]["judgements"]["minItems"], 2);
        assert!(token_budget(6) > token_budget(1));
    }
}
