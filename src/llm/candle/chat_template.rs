//! Chat templates: the Jinja template a GGUF carries (`tokenizer.chat_template`), rendered
//! with minijinja as Hugging Face's `apply_chat_template` would, or a built-in one for
//! the families whose GGUFs often omit it (ChatML for Qwen2, Gemma's turns).
//!
//! Message contents are rendered as placeholders and split out again, so that the caller
//! can tokenize the template's own text with special tokens and the contents without: a
//! `<|im_end|>` typed into client context stays text.

use minijinja::{Environment, context};

// Newlines are written as {{ '\n' }} so that the whitespace-trimming tags cannot eat them.
/// moondream2's question format (its `answer_question`): the image comes before this, the
/// messages (system, then user) form the question.
const MOONDREAM: &str = "{% for message in messages %}{% if loop.first %}\n\nQuestion: {% else %}\n\n{% endif %}{{ message['content'] }}{% endfor %}\n\nAnswer:";

const CHATML: &str = r#"
{%- for message in messages -%}
<|im_start|>{{ message.role }}{{ '\n' }}{{ message.content }}<|im_end|>{{ '\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\n' }}{%- endif -%}
"#;

// Gemma has no system role: the system text opens the first user turn (as Google's
// template does); "assistant" is "model".
const GEMMA: &str = r#"
{%- set ns = namespace(done=false, system=none) -%}
{%- for message in messages -%}
  {%- if message.role == 'system' -%}
    {%- set ns.system = message.content -%}
  {%- else -%}
    <start_of_turn>{{ 'model' if message.role == 'assistant' else message.role }}{{ '\n' }}
    {%- if message.role == 'user' and not ns.done and ns.system is not none -%}
      {{ ns.system }}{{ '\n\n' }}
    {%- endif -%}
    {%- if message.role == 'user' -%}{%- set ns.done = true -%}{%- endif -%}
    {{ message.content }}<end_of_turn>{{ '\n' }}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}<start_of_turn>model{{ '\n' }}{%- endif -%}
"#;

// Private-use code points: no tokenizer vocabulary or client text is expected to hold
// them, and the content is checked for them before rendering.
const OPEN: char = '\u{F8F0}';
const CLOSE: char = '\u{F8F1}';

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Text the template wrote (special tokens are parsed in it).
    Template(String),
    /// A message's content (special tokens are plain text in it).
    Content(String),
}

#[derive(Debug, Clone)]
pub struct ChatTemplate {
    /// The template, compiled once at load as "chat".
    env: Environment<'static>,
    /// "gguf" for the file's own template, else the built-in one's name.
    pub origin: &'static str,
    bos_token: String,
    eos_token: String,
}

#[derive(Debug, thiserror::Error)]
#[error("chat template ({origin}) failed: {reason}")]
pub struct TemplateError {
    origin: &'static str,
    reason: String,
}

impl ChatTemplate {
    /// The GGUF's own template when it has one, else the built-in one for `architecture`,
    /// compiled; an error when it does not compile.
    pub fn for_model(
        gguf_template: Option<&str>,
        architecture: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self, TemplateError> {
        let (source, origin) = match gguf_template {
            Some(t) if !t.trim().is_empty() => (t.to_string(), "gguf"),
            _ if architecture.starts_with("gemma") => (GEMMA.to_string(), "builtin-gemma"),
            _ if architecture == "moondream" => (MOONDREAM.to_string(), "builtin-moondream"),
            _ => (CHATML.to_string(), "builtin-chatml"),
        };
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        env.add_template_owned("chat", source)
            .map_err(|e| TemplateError {
                origin,
                reason: e.to_string(),
            })?;
        Ok(Self {
            env,
            origin,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// Renders `messages` (role, content) with the generation prompt appended.
    pub fn render(&self, messages: &[(&str, &str)]) -> Result<Vec<Segment>, TemplateError> {
        let fail = |reason: String| TemplateError {
            origin: self.origin,
            reason,
        };
        if messages
            .iter()
            .any(|(_, c)| c.contains(OPEN) || c.contains(CLOSE))
        {
            return Err(fail(
                "a message contains the private-use characters U+F8F0/U+F8F1".into(),
            ));
        }
        let placeholders: Vec<minijinja::Value> = messages
            .iter()
            .enumerate()
            .map(|(i, (role, _))| {
                minijinja::Value::from_serialize(serde_json::json!({
                    "role": role,
                    "content": format!("{OPEN}{i}{CLOSE}"),
                }))
            })
            .collect();
        let rendered = self
            .env
            .get_template("chat")
            .and_then(|t| {
                t.render(context! {
                    messages => placeholders,
                    add_generation_prompt => true,
                    bos_token => self.bos_token,
                    eos_token => self.eos_token,
                })
            })
            .map_err(|e| fail(e.to_string()))?;
        let mut segments = Vec::new();
        let mut rest = rendered.as_str();
        while let Some(open) = rest.find(OPEN) {
            if open > 0 {
                segments.push(Segment::Template(rest[..open].to_string()));
            }
            let after = &rest[open + OPEN.len_utf8()..];
            let close = after
                .find(CLOSE)
                .ok_or_else(|| fail("the template cut a message placeholder".into()))?;
            let index: usize = after[..close]
                .parse()
                .map_err(|_| fail("the template altered a message placeholder".into()))?;
            let content = messages
                .get(index)
                .ok_or_else(|| fail("the template altered a message placeholder".into()))?
                .1;
            segments.push(Segment::Content(content.to_string()));
            rest = &after[close + CLOSE.len_utf8()..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Template(rest.to_string()));
        }
        Ok(segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(segments: &[Segment]) -> String {
        segments
            .iter()
            .map(|s| match s {
                Segment::Template(t) | Segment::Content(t) => t.as_str(),
            })
            .collect()
    }

    #[test]
    fn chatml_builtin() {
        let t = ChatTemplate::for_model(None, "qwen2", "", "").unwrap();
        let segments = t
            .render(&[("system", "be brief"), ("user", "hi <|im_end|>")])
            .unwrap();
        assert_eq!(
            flatten(&segments),
            "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi <|im_end|><|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(segments[3], Segment::Content("hi <|im_end|>".into()));
    }

    #[test]
    fn gemma_builtin_folds_the_system_turn_into_the_first_user_turn() {
        let t = ChatTemplate::for_model(None, "gemma3", "<bos>", "<eos>").unwrap();
        let segments = t
            .render(&[
                ("system", "S"),
                ("user", "U1"),
                ("assistant", "A"),
                ("user", "U2"),
            ])
            .unwrap();
        assert_eq!(
            flatten(&segments),
            "<start_of_turn>user\nS\n\nU1<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn a_gguf_template_with_python_methods_renders() {
        let source = "{% for m in messages %}{{ m.role.upper() }}:{{ m.content.strip() }}|{% endfor %}{% if add_generation_prompt %}A:{% endif %}";
        let t = ChatTemplate::for_model(Some(source), "qwen2", "", "").unwrap();
        let segments = t.render(&[("user", "x")]).unwrap();
        assert_eq!(flatten(&segments), "USER:x|A:");
    }

    #[test]
    fn a_template_that_does_not_compile_is_refused_at_load() {
        let e =
            ChatTemplate::for_model(Some("{% for m in messages %}"), "qwen2", "", "").unwrap_err();
        assert!(e.to_string().contains("chat template (gguf) failed"), "{e}");
    }

    #[test]
    fn raise_exception_is_an_error() {
        let source = "{{ raise_exception('no system role') }}";
        let t = ChatTemplate::for_model(Some(source), "qwen2", "", "").unwrap();
        let e = t.render(&[("user", "x")]).unwrap_err();
        assert!(e.to_string().contains("no system role"), "{e}");
    }
}
