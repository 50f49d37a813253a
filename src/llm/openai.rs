//! Any OpenAI-compatible chat server over HTTP (llama.cpp `llama-server`, Ollama, vLLM):
//! `POST /v1/chat/completions` with `stream: true`, read as server-sent events. Images go as
//! data URIs. Connection failures and 5xx answers before the first token are retried with
//! back-off; a read that stalls past the timeout is DEADLINE-like; cancelling drops the
//! connection, which llama.cpp's server takes as the signal to stop generating.
//!
//! A structured answer's JSON schema goes in `response_format`, in the form the server
//! takes: OpenAI's `{"type": "json_schema", "json_schema": {...}}` (llama.cpp's
//! `llama-server`, vLLM, OpenAI), or `{"type": "json_object", "schema": ...}`
//! (llama-cpp-python's server, older llama.cpp). With `auto`, the first form is tried and a
//! server that refuses it (HTTP 4xx) gets the second, which is then remembered. The
//! server's grammar may or may not hold the model to the schema's every rule (llama.cpp
//! does not enforce number ranges); the answer is validated either way. With labels to
//! score, `logprobs` are asked for, and each label's probability at a `"label"` field is
//! its first token's, among the server's top 20, normalised over the set.

use std::error::Error as _;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{ChatBackend, ChatRequest, Generation, LabelScores, LlmError, Part};

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// e.g. "http://127.0.0.1:8080" (a trailing "/v1" is accepted too).
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    /// Longest wait for the next piece of the stream (the first token included).
    pub read_timeout: Duration,
    /// Extra attempts after a connection failure or a 5xx answer.
    pub retries: u32,
    pub accepts_images: bool,
    /// How a response schema is sent.
    pub schema_mode: SchemaMode,
}

/// How a structured answer's schema is sent (`llm.openai_response_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaMode {
    /// `json_schema`, then `json_object` if the server refuses it.
    Auto,
    /// OpenAI's `{"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`.
    JsonSchema,
    /// `{"type": "json_object", "schema": ...}` (llama-cpp-python, older llama.cpp).
    JsonObject,
    /// No `response_format`: the schema is only in the prompt's words.
    None,
}

pub struct OpenAiBackend {
    config: OpenAiConfig,
    agent: ureq::Agent,
    endpoint: String,
    /// The schema form this server took, once one has worked (`auto`).
    learned: std::sync::Mutex<Option<SchemaMode>>,
}

const NAME: &str = "openai";

/// How a refused `response_format` form is reported (the next form is then tried).
const REFUSED: &str = "the server refused this response_format form";

/// Alternatives per token asked for when labels are scored (OpenAI's maximum).
const TOP_LOGPROBS: u32 = 20;

/// The schema in the subset that servers' schema-to-grammar converters take, meaning the
/// same: without llguidance's own options (`x-guidance`), which servers reject, and with no
/// boolean schema where a converter wants an object. Found with llama.cpp's own
/// `llama-server`, which refused the whole request over `"items": false` after
/// `prefixItems` ("schema must be an object"); `maxItems` = the number of `prefixItems`
/// says the same (no further items), so that is what servers get.
fn for_servers(schema: &Value) -> Value {
    fn portable(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("x-guidance");
                if map.get("items") == Some(&Value::Bool(false))
                    && let Some(count) = map
                        .get("prefixItems")
                        .and_then(Value::as_array)
                        .map(Vec::len)
                {
                    map.remove("items");
                    let most = map
                        .get("maxItems")
                        .and_then(Value::as_u64)
                        .map_or(count as u64, |m| m.min(count as u64));
                    map.insert("maxItems".into(), most.into());
                }
                map.values_mut().for_each(portable);
            }
            Value::Array(items) => items.iter_mut().for_each(portable),
            _ => {}
        }
    }
    let mut schema = schema.clone();
    portable(&mut schema);
    schema
}

/// Whether `text` ends where a `"label"` field's string value starts (`"label": "`).
fn at_label_value(text: &str) -> bool {
    let Some(before_quote) = text.strip_suffix('"') else {
        return false;
    };
    let Some(before_colon) = before_quote.trim_end().strip_suffix(':') else {
        return false;
    };
    before_colon.trim_end().ends_with("\"label\"")
}

/// Each label's probability from the top alternatives at a label's first token: the most
/// probable alternative that starts the label (or is the label and its quote), normalised
/// over the set; None when no alternative starts any label.
fn first_token_scores(top: &[(String, f64)], labels: &[String]) -> Option<LabelScores> {
    let p: Vec<f64> = labels
        .iter()
        .map(|label| {
            top.iter()
                .filter(|(token, _)| {
                    !token.is_empty()
                        && (label.starts_with(token.as_str())
                            || token.strip_suffix('"') == Some(label.as_str()))
                })
                .map(|(_, logprob)| logprob.exp())
                .fold(0.0, f64::max)
        })
        .collect();
    let sum: f64 = p.iter().sum();
    (sum > 0.0).then(|| LabelScores {
        probabilities: p.iter().map(|v| (v / sum) as f32).collect(),
        method: "first-token",
    })
}

impl OpenAiBackend {
    pub fn new(config: OpenAiConfig) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(config.connect_timeout)
            .timeout_read(config.read_timeout)
            .build();
        let base = config
            .base_url
            .trim_end_matches('/')
            .trim_end_matches("/v1");
        let endpoint = format!("{base}/v1/chat/completions");
        Self {
            config,
            agent,
            endpoint,
            learned: std::sync::Mutex::new(None),
        }
    }

    /// The schema forms to try, in order.
    fn schema_modes(&self, request: &ChatRequest) -> Vec<SchemaMode> {
        if request.response.is_none() {
            return vec![SchemaMode::None];
        }
        match self.config.schema_mode {
            SchemaMode::Auto => match *self.learned.lock().unwrap_or_else(|p| p.into_inner()) {
                Some(mode) => vec![mode],
                None => vec![SchemaMode::JsonSchema, SchemaMode::JsonObject],
            },
            mode => vec![mode],
        }
    }

    fn body(&self, request: &ChatRequest, mode: SchemaMode) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| {
                let only_text = m.parts.iter().all(|p| matches!(p, Part::Text(_)));
                let content = if only_text {
                    Value::String(
                        m.parts
                            .iter()
                            .map(|p| match p {
                                Part::Text(t) => t.as_str(),
                                Part::Image { .. } => "",
                            })
                            .collect(),
                    )
                } else {
                    Value::Array(
                        m.parts
                            .iter()
                            .map(|p| match p {
                                Part::Text(t) => json!({"type": "text", "text": t}),
                                Part::Image { mime, bytes } => json!({
                                    "type": "image_url",
                                    "image_url": {"url": format!(
                                        "data:{mime};base64,{}",
                                        base64::engine::general_purpose::STANDARD.encode(bytes)
                                    )}
                                }),
                            })
                            .collect(),
                    )
                };
                json!({"role": m.role, "content": content})
            })
            .collect();
        let mut body = json!({
            "model": self.config.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": if request.top_p > 0.0 { request.top_p } else { 1.0 },
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(seed) = request.seed {
            body["seed"] = json!(seed);
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        if let Some(response) = &request.response {
            let schema = for_servers(&response.schema);
            match mode {
                SchemaMode::JsonSchema => {
                    body["response_format"] = json!({
                        "type": "json_schema",
                        "json_schema": {"name": "answer", "strict": true, "schema": schema},
                    })
                }
                SchemaMode::JsonObject => {
                    body["response_format"] = json!({"type": "json_object", "schema": schema})
                }
                SchemaMode::Auto | SchemaMode::None => {}
            }
            if !response.labels.is_empty() {
                body["logprobs"] = json!(true);
                body["top_logprobs"] = json!(TOP_LOGPROBS);
            }
        }
        body
    }

    /// An HTTP error answer: a 5xx is the server's trouble (unavailable), a 4xx the
    /// request's.
    fn status_error(&self, code: u16, text: String) -> LlmError {
        let text: String = text.chars().take(300).collect();
        if code >= 500 {
            self.unavailable(format!("HTTP {code}: {text}"))
        } else {
            LlmError::Protocol {
                backend: NAME.into(),
                reason: format!("HTTP {code}: {text}"),
            }
        }
    }

    fn unavailable(&self, reason: String) -> LlmError {
        LlmError::Unavailable {
            backend: format!("{NAME} at {}", self.config.base_url),
            reason,
        }
    }

    fn timeout(&self) -> LlmError {
        LlmError::Timeout {
            backend: format!("{NAME} at {}", self.config.base_url),
            seconds: self.config.read_timeout.as_secs_f64(),
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

impl ChatBackend for OpenAiBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    fn accepts_images(&self) -> bool {
        self.config.accepts_images
    }

    fn generate(
        &self,
        request: &ChatRequest,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, LlmError> {
        let started = Instant::now();
        let modes = self.schema_modes(request);
        let mut refusal = None;
        for (i, &mode) in modes.iter().enumerate() {
            match self.generate_with(request, mode, started, on_token) {
                Err(LlmError::Protocol { reason, .. })
                    if i + 1 < modes.len() && reason.starts_with(REFUSED) =>
                {
                    // This server does not take the schema in this form: try the next.
                    refusal = Some(reason);
                }
                Ok(g) => {
                    if self.config.schema_mode == SchemaMode::Auto && request.response.is_some() {
                        *self.learned.lock().unwrap_or_else(|p| p.into_inner()) = Some(mode);
                    }
                    return Ok(g);
                }
                Err(e) => return Err(e),
            }
        }
        Err(LlmError::Protocol {
            backend: NAME.into(),
            reason: refusal.unwrap_or_else(|| "no response_format form was accepted".into()),
        })
    }
}

impl OpenAiBackend {
    fn generate_with(
        &self,
        request: &ChatRequest,
        mode: SchemaMode,
        started: Instant,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, LlmError> {
        let body = self.body(request, mode);
        let mut attempt = 0;
        let response = loop {
            let mut call = self
                .agent
                .post(&self.endpoint)
                .set("Accept", "text/event-stream");
            if let Some(key) = &self.config.api_key {
                call = call.set("Authorization", &format!("Bearer {key}"));
            }
            match call.send_json(body.clone()) {
                Ok(r) => break r,
                Err(ureq::Error::Status(code, r))
                    if request.response.is_some() && mode != SchemaMode::None =>
                {
                    // A server that does not take the schema in this form says so in
                    // its answer (llama-cpp-python with a 500, others with a 4xx).
                    let text = r.into_string().unwrap_or_default();
                    if text.contains("response_format") {
                        return Err(LlmError::Protocol {
                            backend: NAME.into(),
                            reason: format!(
                                "{REFUSED} (HTTP {code}): {}",
                                text.chars().take(300).collect::<String>()
                            ),
                        });
                    }
                    if code >= 500 && attempt < self.config.retries {
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(200 * 2u64.pow(attempt.min(5))));
                        continue;
                    }
                    return Err(self.status_error(code, text));
                }
                Err(ureq::Error::Status(code, r))
                    if code >= 500 && attempt < self.config.retries =>
                {
                    drop(r);
                }
                Err(ureq::Error::Status(code, r)) => {
                    return Err(self.status_error(code, r.into_string().unwrap_or_default()));
                }
                Err(ureq::Error::Transport(t)) => {
                    let timed_out = t
                        .source()
                        .and_then(|s| s.downcast_ref::<std::io::Error>())
                        .is_some_and(is_timeout)
                        || t.to_string().contains("timed out");
                    if timed_out {
                        return Err(self.timeout());
                    }
                    if attempt >= self.config.retries {
                        return Err(self.unavailable(t.to_string()));
                    }
                }
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(200 * 2u64.pow(attempt.min(5))));
        };

        let mut text = String::new();
        let mut first_token: Option<Duration> = None;
        let (mut prompt_tokens, mut generated_tokens) = (0u32, 0u32);
        let mut counted = 0u32;
        let mut cancelled = false;
        let mut hit_max_tokens = false;
        let labels: &[String] = request.response.as_ref().map_or(&[], |r| &r.labels);
        let mut label_probabilities = Vec::new();
        // The text the logprob tokens spell so far (to find the label fields).
        let mut spelled = String::new();
        let reader = BufReader::new(response.into_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| {
                if is_timeout(&e) {
                    self.timeout()
                } else {
                    self.unavailable(format!("the stream broke: {e}"))
                }
            })?;
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                break;
            }
            let event: Value = serde_json::from_str(data).map_err(|e| LlmError::Protocol {
                backend: NAME.into(),
                reason: format!(
                    "an event that is not JSON ({e}): {}",
                    data.chars().take(200).collect::<String>()
                ),
            })?;
            if let Some(usage) = event.get("usage").filter(|u| u.is_object()) {
                prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0) as u32;
                generated_tokens = usage["completion_tokens"].as_u64().unwrap_or(0) as u32;
            }
            if event["choices"][0]["finish_reason"].as_str() == Some("length") {
                hit_max_tokens = true;
            }
            if !labels.is_empty()
                && let Some(tokens) = event["choices"][0]["logprobs"]["content"].as_array()
            {
                for t in tokens {
                    if at_label_value(&spelled) {
                        let top: Vec<(String, f64)> = t["top_logprobs"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|a| {
                                Some((a["token"].as_str()?.to_string(), a["logprob"].as_f64()?))
                            })
                            .collect();
                        if let Some(scores) = first_token_scores(&top, labels) {
                            label_probabilities.push(scores);
                        }
                    }
                    spelled.push_str(t["token"].as_str().unwrap_or(""));
                }
            }
            let piece = event["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("");
            if piece.is_empty() {
                continue;
            }
            first_token.get_or_insert_with(|| started.elapsed());
            counted += 1;
            text.push_str(piece);
            if on_token(piece).is_break() {
                // Dropping the reader closes the connection: the server stops generating.
                cancelled = true;
                break;
            }
        }
        Ok(Generation {
            text,
            prompt_tokens,
            generated_tokens: if generated_tokens > 0 {
                generated_tokens
            } else {
                counted
            },
            time_to_first_token: first_token.unwrap_or_default(),
            total: started.elapsed(),
            cancelled,
            hit_max_tokens,
            label_probabilities,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_fields_are_found_however_the_json_is_spaced() {
        assert!(at_label_value(r#"{"judgements":[{"face_id":1,"label":""#));
        assert!(at_label_value("{\"label\" :  \""));
        assert!(!at_label_value(r#"{"label":"hap"#));
        assert!(!at_label_value(r#"{"rationale":""#));
    }

    #[test]
    fn first_token_scores_normalise_over_the_labels() {
        let labels: Vec<String> = ["happy", "sad", "angry"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let top = vec![
            ("happy".to_string(), (0.5f64).ln()),
            ("h".to_string(), (0.1f64).ln()),
            ("sad".to_string(), (0.2f64).ln()),
            ("xyz".to_string(), (0.1f64).ln()),
        ];
        let s = first_token_scores(&top, &labels).unwrap();
        assert_eq!(s.method, "first-token");
        // happy 0.5 (its best token), sad 0.2, angry absent from the top: 0.
        assert!((s.probabilities[0] - 0.5 / 0.7).abs() < 1e-6);
        assert!((s.probabilities[1] - 0.2 / 0.7).abs() < 1e-6);
        assert_eq!(s.probabilities[2], 0.0);
        assert!(first_token_scores(&[("xyz".into(), 0.0)], &labels).is_none());
    }

    #[test]
    fn the_schema_goes_in_the_form_the_server_takes() {
        let backend = OpenAiBackend::new(OpenAiConfig {
            base_url: "http://127.0.0.1:1".into(),
            model: "m".into(),
            api_key: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            retries: 0,
            accepts_images: false,
            schema_mode: SchemaMode::Auto,
        });
        let request = ChatRequest {
            messages: Vec::new(),
            max_tokens: 8,
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
            stop: Vec::new(),
            response: Some(super::super::ResponseFormat {
                schema: json!({"type": "object", "x-guidance": {"whitespace_flexible": false}}),
                labels: vec!["happy".into()],
            }),
            no_repeat_ngram: 0,
        };
        assert_eq!(
            backend.schema_modes(&request),
            [SchemaMode::JsonSchema, SchemaMode::JsonObject]
        );
        let body = backend.body(&request, SchemaMode::JsonSchema);
        assert_eq!(body["response_format"]["type"], "json_schema");
        // llguidance's own options are not sent.
        assert!(
            body["response_format"]["json_schema"]["schema"]
                .get("x-guidance")
                .is_none()
        );
        assert_eq!(body["logprobs"], true);
        let body = backend.body(&request, SchemaMode::JsonObject);
        assert_eq!(body["response_format"]["type"], "json_object");
        assert_eq!(body["response_format"]["schema"]["type"], "object");
    }

    /// The answer schema as servers get it: the same constraints in the subset their
    /// converters take (llama-server refused `"items": false`): no boolean schema but
    /// `additionalProperties`, no llguidance options, the judgements still exactly one
    /// per face.
    #[test]
    fn servers_get_the_answer_schema_without_boolean_item_schemas() {
        let labels = vec!["happy".to_string(), "sad".to_string()];
        let au: &'static [&'static str] = &["present", "absent"];
        let keys = vec![vec![(au, vec!["AU12".to_string()])], vec![]];
        let schema = crate::explain::schema::answer_schema(&crate::explain::schema::AnswerShape {
            face_ids: &[3, 7],
            labels: &labels,
            evidence_keys: &keys,
        });
        let sent = for_servers(&schema);
        fn booleans_outside_additional_properties(
            value: &Value,
            key: &str,
            found: &mut Vec<String>,
        ) {
            match value {
                Value::Bool(_) if key != "additionalProperties" && key != "const" => {
                    found.push(key.to_string())
                }
                Value::Object(map) => map
                    .iter()
                    .for_each(|(k, v)| booleans_outside_additional_properties(v, k, found)),
                Value::Array(items) => items
                    .iter()
                    .for_each(|v| booleans_outside_additional_properties(v, key, found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        booleans_outside_additional_properties(&sent, "", &mut found);
        assert!(found.is_empty(), "boolean schemas under {found:?}");
        assert!(sent.get("x-guidance").is_none());
        let judgements = &sent["properties"]["judgements"];
        assert_eq!(judgements["prefixItems"].as_array().unwrap().len(), 2);
        assert_eq!(
            (
                judgements["minItems"].as_u64(),
                judgements["maxItems"].as_u64()
            ),
            (Some(2), Some(2))
        );
        // Everything else is as llguidance gets it.
        let mut back = sent.clone();
        back["properties"]["judgements"]["items"] = Value::Bool(false);
        back["x-guidance"] = schema["x-guidance"].clone();
        assert_eq!(back, schema);
    }
}
