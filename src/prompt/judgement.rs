//! Judgements are taken from the model's words and validated, never invented: the JSON is
//! found tolerantly (code fences, reasoning before it, text after it), then held to the
//! contract (labels from the set, numbers in range, exactly the requested face ids). What
//! fails is reported with every problem, for one repair prompt; after that the caller
//! returns the raw text marked unparsed.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Judgement {
    pub face_id: u32,
    /// Exactly as spelled in the label set.
    pub label: String,
    /// `[0,1]`
    pub confidence: f32,
    /// `[-1,1]`
    pub valence: f32,
    /// `[0,1]`
    pub arousal: f32,
    pub rationale: String,
}

/// Every JSON object or array in `text` that parses, in order of appearance (outermost
/// only: a value found inside an earlier one is skipped).
fn json_values(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'{' || bytes[i] == b'[' {
            let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
            if let Some(Ok(value)) = stream.next() {
                out.push(value);
                i += stream.byte_offset();
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The list of judgement objects from the last JSON value that holds one: {"judgements":
/// [...]}, a bare array of objects, or a single object with a "label".
fn candidate(text: &str) -> Option<Vec<Value>> {
    json_values(text).into_iter().rev().find_map(|v| match v {
        Value::Object(ref map) if map.get("judgements").is_some_and(Value::is_array) => {
            map["judgements"].as_array().cloned()
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            Some(items)
        }
        Value::Object(ref map) if map.contains_key("label") => Some(vec![v.clone()]),
        _ => None,
    })
}

fn number(
    item: &serde_json::Map<String, Value>,
    key: &str,
    range: (f64, f64),
    at: &str,
    problems: &mut Vec<String>,
) -> f32 {
    match item.get(key).and_then(Value::as_f64) {
        Some(v) if v >= range.0 && v <= range.1 => v as f32,
        Some(v) => {
            problems.push(format!(
                "{at}: \"{key}\" is {v}, outside [{}, {}]",
                range.0, range.1
            ));
            0.0
        }
        None => {
            problems.push(format!("{at}: \"{key}\" is missing or not a number"));
            0.0
        }
    }
}

/// Finds and validates the judgements in a model's answer. Err holds every problem found,
/// in words fit for a repair prompt.
pub fn parse(
    text: &str,
    labels: &[String],
    face_ids: &[u32],
) -> Result<Vec<Judgement>, Vec<String>> {
    let Some(items) = candidate(text) else {
        return Err(vec![
            "no JSON object with a \"judgements\" list was found in the answer".into(),
        ]);
    };
    let mut problems = Vec::new();
    let mut out: Vec<Judgement> = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let at = format!("judgement {}", k + 1);
        let Some(item) = item.as_object() else {
            problems.push(format!("{at} is not an object"));
            continue;
        };
        // A single face may be answered without its id.
        let face_id = match item.get("face_id").and_then(Value::as_u64) {
            Some(id) => id as u32,
            None if face_ids.len() == 1 && items.len() == 1 => face_ids[0],
            None => {
                problems.push(format!(
                    "{at}: \"face_id\" is missing or not a whole number"
                ));
                continue;
            }
        };
        if !face_ids.contains(&face_id) {
            problems.push(format!(
                "{at}: face_id {face_id} is not one of the faces asked about ({face_ids:?})"
            ));
            continue;
        }
        if out.iter().any(|j| j.face_id == face_id) {
            problems.push(format!("{at}: face {face_id} is judged twice"));
            continue;
        }
        let label = match item.get("label").and_then(Value::as_str) {
            Some(l) => match labels.iter().find(|x| x.eq_ignore_ascii_case(l.trim())) {
                Some(x) => x.clone(),
                None => {
                    problems.push(format!("{at}: label {l:?} is not one of {labels:?}"));
                    String::new()
                }
            },
            None => {
                problems.push(format!("{at}: \"label\" is missing or not a string"));
                String::new()
            }
        };
        let confidence = number(item, "confidence", (0.0, 1.0), &at, &mut problems);
        let valence = number(item, "valence", (-1.0, 1.0), &at, &mut problems);
        let arousal = number(item, "arousal", (0.0, 1.0), &at, &mut problems);
        let rationale = item
            .get("rationale")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string();
        out.push(Judgement {
            face_id,
            label,
            confidence,
            valence,
            arousal,
            rationale,
        });
    }
    for id in face_ids {
        if !out.iter().any(|j| j.face_id == *id)
            && !problems.iter().any(|p| p.contains(&format!("face {id} ")))
        {
            problems.push(format!("face {id} has no judgement"));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The follow-up message asking the model to fix its answer (sent once).
pub fn repair_prompt(problems: &[String], labels: &[String], face_ids: &[u32]) -> String {
    let labels = labels
        .iter()
        .map(|l| format!("\"{l}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "Your answer could not be used:\n{}\nReply with only the corrected JSON object, no other text:\n\
         {{\"judgements\": [{{\"face_id\": <id>, \"label\": <one of {labels}>, \"confidence\": <0..1>, \
         \"valence\": <-1..1>, \"arousal\": <0..1>, \"rationale\": \"...\"}}]}} with one entry for each face id in {face_ids:?}.",
        problems
            .iter()
            .map(|p| format!("- {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["happy", "sad", "neutral"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn json_after_reasoning_and_in_fences_is_found() {
        let text = "Stage 1: a lab. {not json} Stage 5: final.\n```json\n{\"judgements\": [{\"face_id\": 2, \"label\": \"Happy\", \"confidence\": 0.8, \"valence\": 0.6, \"arousal\": 0.5, \"rationale\": \"AU6+AU12\"}]}\n```\nDone.";
        let j = parse(text, &labels(), &[2]).unwrap();
        assert_eq!(j[0].label, "happy");
        assert_eq!(j[0].face_id, 2);
        assert_eq!(j[0].rationale, "AU6+AU12");
    }

    #[test]
    fn the_last_answer_wins_after_self_correction() {
        let text = r#"Tentative: {"judgements":[{"face_id":1,"label":"sad","confidence":0.4,"valence":-0.3,"arousal":0.3}]}
        Correction: {"judgements":[{"face_id":1,"label":"neutral","confidence":0.6,"valence":0.0,"arousal":0.2}]}"#;
        assert_eq!(parse(text, &labels(), &[1]).unwrap()[0].label, "neutral");
    }

    #[test]
    fn every_contract_breach_is_named() {
        let text = r#"{"judgements":[{"face_id":1,"label":"joy","confidence":1.7,"valence":-2,"arousal":0.5},{"face_id":9,"label":"sad","confidence":0.5,"valence":0,"arousal":0.5}]}"#;
        let problems = parse(text, &labels(), &[1, 2]).unwrap_err();
        let all = problems.join("\n");
        assert!(all.contains("label \"joy\" is not one of"), "{all}");
        assert!(all.contains("\"confidence\" is 1.7"), "{all}");
        assert!(all.contains("\"valence\" is -2"), "{all}");
        assert!(all.contains("face_id 9 is not one of"), "{all}");
        assert!(all.contains("face 2 has no judgement"), "{all}");
        assert!(
            parse("I think they are happy.", &labels(), &[1]).unwrap_err()[0]
                .contains("no JSON object")
        );
        let repair = repair_prompt(&problems, &labels(), &[1, 2]);
        assert!(repair.contains("- judgement 1: label \"joy\""));
    }
}
