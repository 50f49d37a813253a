//! An explanation's result as JSON: the CLI's `affectd explain` output and the dashboard's
//! judgement panel read the same object.

use crate::explain::Explanation;

/// A distribution over the request's labels as a JSON object.
fn distribution_json(labels: &[String], p: &[f32]) -> serde_json::Value {
    serde_json::Value::Object(
        labels
            .iter()
            .zip(p)
            .map(|(l, p)| (l.clone(), serde_json::json!(p)))
            .collect(),
    )
}

/// An explanation's result as one JSON object (`affectd explain`, the dashboard).
pub fn explanation_json(r: &Explanation) -> serde_json::Value {
    let t = &r.timings;
    let judgements: Vec<serde_json::Value> = r
        .judgements
        .iter()
        .map(|f| {
            let j = &f.judgement;
            serde_json::json!({
                "face_id": j.face_id,
                "label": j.label,
                "confidence": j.confidence,
                "valence": j.valence,
                "arousal": j.arousal,
                "rationale": j.rationale,
                "label_probabilities": (!f.label_probabilities.is_empty())
                    .then(|| distribution_json(&r.labels, &f.label_probabilities)),
                "label_probability_method": (!f.label_probability_method.is_empty())
                    .then_some(&f.label_probability_method),
                "citations": f.citations,
                "grounding": f.grounding,
                "combined_label": f.combined.as_ref().map(|c| &c.0),
                "combined_probabilities": f
                    .combined
                    .as_ref()
                    .map(|c| distribution_json(&r.labels, &c.1)),
            })
        })
        .collect();
    serde_json::json!({
        "parsed": r.parsed,
        "judgements": judgements,
        "stages": r.stages,
        "constrained": r.constrained,
        "combination_method": (!r.combination_method.is_empty()).then_some(&r.combination_method),
        "parse_error": r.parse_error,
        "repair_attempts": r.repair_attempts,
        "raw_text": r.raw_text,
        "template_id": r.template_id,
        "image_included": r.image_included,
        "backend": r.backend,
        "model": r.model,
        "timings": {
            "time_to_first_token_ms": t.time_to_first_token_ms,
            "prompt_tokens": t.prompt_tokens,
            "generated_tokens": t.generated_tokens,
            "prompt_tokens_per_s": t.prompt_tokens_per_s,
            "generation_tokens_per_s": t.generation_tokens_per_s,
            "total_ms": t.total_ms,
        },
    })
}
