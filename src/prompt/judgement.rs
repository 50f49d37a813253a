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
    /// The measurements the judgement says it used (empty when it cites none).
    pub evidence: Vec<Citation>,
}

/// A measurement a judgement cites: a key from the prompt and what it says of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Citation {
    pub key: String,
    /// high, low, present, absent, up or down.
    pub direction: String,
}

/// The SoVTP stages of an answer, each the model's own short text.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stages {
    pub scene: String,
    pub body: String,
    pub others: String,
    pub cues: String,
    pub check: String,
}

/// A validated answer: one judgement per face, and the stages when the answer has them.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub judgements: Vec<Judgement>,
    pub stages: Option<Stages>,
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
/// [...]} (with its "stages" when it has them), a bare array of objects, or a single object
/// with a "label".
fn candidate(text: &str) -> Option<(Vec<Value>, Option<Value>)> {
    json_values(text).into_iter().rev().find_map(|v| match v {
        Value::Object(ref map) if map.get("judgements").is_some_and(Value::is_array) => Some((
            map["judgements"].as_array().cloned().unwrap_or_default(),
            map.get("stages").cloned(),
        )),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            Some((items, None))
        }
        Value::Object(ref map) if map.contains_key("label") => Some((vec![v.clone()], None)),
        _ => None,
    })
}

/// The stages, when the answer has a "stages" object; its fields are the model's text.
fn stages(value: Option<&Value>, problems: &mut Vec<String>) -> Option<Stages> {
    let map = value?.as_object().or_else(|| {
        problems.push("\"stages\" is not an object".into());
        None
    })?;
    let field = |name: &str| {
        map.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    Some(Stages {
        scene: field("scene"),
        body: field("body"),
        others: field("others"),
        cues: field("cues"),
        check: field("check"),
    })
}

/// A judgement's "evidence" list (absent: none cited).
fn evidence(
    item: &serde_json::Map<String, Value>,
    at: &str,
    problems: &mut Vec<String>,
) -> Vec<Citation> {
    let Some(list) = item.get("evidence") else {
        return Vec::new();
    };
    let Some(list) = list.as_array() else {
        problems.push(format!("{at}: \"evidence\" is not a list"));
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .filter_map(|(k, e)| {
            let key = e.get("key").and_then(Value::as_str);
            let direction = e.get("direction").and_then(Value::as_str);
            match (key, direction) {
                (Some(key), Some(direction)) => Some(Citation {
                    key: key.trim().to_string(),
                    direction: direction.trim().to_ascii_lowercase(),
                }),
                _ => {
                    problems.push(format!(
                        "{at}: evidence item {} is not {{\"key\": ..., \"direction\": ...}}",
                        k + 1
                    ));
                    None
                }
            }
        })
        .collect()
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
    parse_answer(text, labels, face_ids).map(|a| a.judgements)
}

/// Like [`parse`], with the answer's SoVTP stages.
pub fn parse_answer(
    text: &str,
    labels: &[String],
    face_ids: &[u32],
) -> Result<Answer, Vec<String>> {
    let Some((items, stage_value)) = candidate(text) else {
        return Err(vec![
            "no JSON object with a \"judgements\" list was found in the answer".into(),
        ]);
    };
    let mut problems = Vec::new();
    let stages = stages(stage_value.as_ref(), &mut problems);
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
        let evidence = evidence(item, &at, &mut problems);
        out.push(Judgement {
            face_id,
            label,
            confidence,
            valence,
            arousal,
            rationale,
            evidence,
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
        Ok(Answer {
            judgements: out,
            stages,
        })
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
         \"valence\": <-1..1>, \"arousal\": <0..1>, \"evidence\": [{{\"key\": \"AU12\", \"direction\": \"present\"}}], \
         \"rationale\": \"...\"}}]}} with one entry for each face id in {face_ids:?}.",
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
