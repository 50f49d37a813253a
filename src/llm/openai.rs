//! Any OpenAI-compatible chat server over HTTP (llama.cpp `llama-server`, Ollama, vLLM):
//! `POST /v1/chat/completions` with `stream: true`, read as server-sent events. Images go as
//! data URIs. Connection failures and 5xx answers before the first token are retried with
//! back-off; a read that stalls past the timeout is DEADLINE-like; cancelling drops the
//! connection, which llama.cpp's server takes as the signal to stop generating.

use std::error::Error as _;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{ChatBackend, ChatRequest, Generation, LlmError, Part};

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
}

pub struct OpenAiBackend {
    config: OpenAiConfig,
    agent: ureq::Agent,
    endpoint: String,
}

const NAME: &str = "openai";

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
        }
    }

    fn body(&self, request: &ChatRequest) -> Value {
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
        body
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
        let body = self.body(request);
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
                    if code >= 500 && attempt < self.config.retries =>
                {
                    drop(r);
                }
                Err(ureq::Error::Status(code, r)) => {
                    let text = r.into_string().unwrap_or_default();
                    return Err(if code >= 500 {
                        self.unavailable(format!(
                            "HTTP {code}: {}",
                            text.chars().take(300).collect::<String>()
                        ))
                    } else {
                        LlmError::Protocol {
                            backend: NAME.into(),
                            reason: format!(
                                "HTTP {code}: {}",
                                text.chars().take(300).collect::<String>()
                            ),
                        }
                    });
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
        })
    }
}
