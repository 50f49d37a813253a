//! AnalyzeFrame over gRPC on the real server: real photos, raw buffers, marked images, and
//! every kind of bad input answered INVALID_ARGUMENT.

use crate::common::*;
use affectd::proto::affect_client::AffectClient;
use affectd::proto::*;
use tonic::Code;

fn photo(name: &str) -> Vec<u8> {
    let path = repo().join(".testdata").join(name);
    std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/fetch-testdata.sh", path.display()))
}

fn encoded(bytes: Vec<u8>) -> Option<ImageInput> {
    Some(ImageInput {
        data: Some(image_input::Data::Encoded(bytes)),
    })
}

fn request(image: Option<ImageInput>, options: Option<FrameOptions>) -> AnalyzeFrameRequest {
    AnalyzeFrameRequest {
        image,
        options,
        timestamp: 12.25,
    }
}

async fn client(server: &TestServer) -> AffectClient<tonic::transport::Channel> {
    AffectClient::new(server.channel().await)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

#[tokio::test]
async fn group_photo_returns_every_face_with_all_outputs() {
    let server = TestServer::start(|_| {});
    let reply = client(&server)
        .await
        .analyze_frame(request(encoded(photo("multi_face.jpg")), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.image_width, reply.image_height), (1000, 667));
    assert_eq!(reply.timestamp, 12.25, "timestamp echoed");
    assert_eq!(reply.faces.len(), 5);
    let ids: Vec<u32> = reply.faces.iter().map(|f| f.face_id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    for face in &reply.faces {
        assert!(face.detection_score > 0.9);
        assert_eq!(face.keypoints.len(), 5);
        assert_eq!(face.landmarks.len(), 478);
        assert_eq!(face.blendshapes.len(), 52);
        assert_eq!(face.blendshapes[0].name, "_neutral");
        assert!(face.action_units.iter().any(|u| u.name == "AU12"));
        let e = face.expression.as_ref().unwrap();
        assert_eq!(
            (e.fer.len(), e.au_prototypes.len(), e.combined.len()),
            (7, 7, 7)
        );
        assert!(face.head_pose.is_some());
    }
    let stages: Vec<&str> = reply.timings.iter().map(|t| t.stage.as_str()).collect();
    for stage in ["decode", "detect", "landmarks", "blendshapes", "expression"] {
        assert!(stages.contains(&stage), "{stage} timed: {stages:?}");
    }
    assert!(reply.marked_image.is_empty(), "only on request");
}

#[tokio::test]
async fn raw_bgr_gives_the_same_faces_as_the_jpeg() {
    let server = TestServer::start(|_| {});
    let jpeg = photo("single_face.jpg");
    let rgb = affectd::vision::image::decode(&jpeg, 1 << 30).unwrap();
    let bgr: Vec<u8> = rgb.pixels().flat_map(|p| [p[2], p[1], p[0]]).collect();
    let raw = Some(ImageInput {
        data: Some(image_input::Data::Raw(RawImage {
            pixels: bgr,
            width: rgb.width(),
            height: rgb.height(),
            format: PixelFormat::Bgr8 as i32,
            stride_bytes: 0,
        })),
    });
    let mut c = client(&server).await;
    let from_raw = c
        .analyze_frame(request(raw, None))
        .await
        .unwrap()
        .into_inner();
    let from_jpeg = c
        .analyze_frame(request(encoded(jpeg), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_raw.faces.len(), 1);
    assert_eq!(from_raw.faces[0].r#box, from_jpeg.faces[0].r#box);
}

#[tokio::test]
async fn marked_image_comes_back_in_the_requested_format() {
    let server = TestServer::start(|_| {});
    let mut c = client(&server).await;
    for (format, magic, mime) in [
        (ImageFormat::Png, &b"\x89PNG"[..], "image/png"),
        (ImageFormat::Jpeg, &b"\xff\xd8"[..], "image/jpeg"),
    ] {
        let options = FrameOptions {
            return_marked_image: true,
            marked_image_format: format as i32,
            ..Default::default()
        };
        let reply = c
            .analyze_frame(request(encoded(photo("t1.jpg")), Some(options)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.faces.len(), 6);
        assert!(reply.marked_image.starts_with(magic), "{mime}");
        assert_eq!(reply.marked_image_mime, mime);
        let marked = image::load_from_memory(&reply.marked_image).unwrap();
        assert_eq!(
            (marked.width(), marked.height()),
            (1280, 886),
            "the full frame, never a crop"
        );
    }
}

#[tokio::test]
async fn options_are_applied_and_checked() {
    let server = TestServer::start(|_| {});
    let mut c = client(&server).await;
    let options = FrameOptions {
        max_faces: 2,
        skip_landmarks: true,
        ..Default::default()
    };
    let reply = c
        .analyze_frame(request(encoded(photo("t1.jpg")), Some(options)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.faces.len(), 2);
    assert!(
        reply.faces.iter().all(|f| f.landmarks.is_empty()
            && f.blendshapes.is_empty()
            && f.action_units.is_empty())
    );
    // The FER cue still runs without landmarks.
    assert!(reply.faces.iter().all(|f| {
        f.expression
            .as_ref()
            .is_some_and(|e| e.fer.len() == 7 && e.au_prototypes.is_empty())
    }));

    for (options, words) in [
        (
            FrameOptions {
                min_face_score: 1.5,
                ..Default::default()
            },
            "min_face_score",
        ),
        (
            FrameOptions {
                detector_max_side: 8,
                ..Default::default()
            },
            "detector_max_side",
        ),
    ] {
        let status = c
            .analyze_frame(request(encoded(photo("single_face.jpg")), Some(options)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(words), "{}", status.message());
    }
}

#[tokio::test]
async fn bad_images_are_invalid_argument_and_the_server_survives() {
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_LOG_LEVEL", "error");
    });
    let mut c = client(&server).await;
    let jpeg = photo("single_face.jpg");
    let raw = |pixels: Vec<u8>, width: u32, height: u32, format: PixelFormat| {
        Some(ImageInput {
            data: Some(image_input::Data::Raw(RawImage {
                pixels,
                width,
                height,
                format: format as i32,
                stride_bytes: 0,
            })),
        })
    };
    // A PNG header that claims 50000 x 50000 pixels.
    let mut bomb = Vec::new();
    image::RgbImage::new(8, 8)
        .write_to(
            &mut std::io::Cursor::new(&mut bomb),
            image::ImageFormat::Png,
        )
        .unwrap();
    bomb[16..20].copy_from_slice(&50_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&50_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]); // IHDR type + data: a valid header
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let cases = [
        ("no image", None, "image is required"),
        ("empty bytes", encoded(Vec::new()), "empty"),
        ("not an image", encoded(b"GIF89a garbage".to_vec()), "image"),
        (
            "truncated JPEG",
            encoded(jpeg[..jpeg.len() / 3].to_vec()),
            "decoded",
        ),
        (
            "random bytes",
            encoded(vec![0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3]),
            "image",
        ),
        ("decompression bomb", encoded(bomb), "pixels"),
        (
            "zero-sized raw",
            raw(Vec::new(), 0, 10, PixelFormat::Rgb8),
            "zero size",
        ),
        (
            "raw length mismatch",
            raw(vec![0; 10], 2, 2, PixelFormat::Rgb8),
            "needs 12",
        ),
        (
            "raw without format",
            raw(vec![0; 12], 2, 2, PixelFormat::Unspecified),
            "format",
        ),
    ];
    for (what, image, words) in cases {
        let status = c.analyze_frame(request(image, None)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().contains(words),
            "{what}: {}",
            status.message()
        );
    }
    // Still serving real requests afterwards.
    let ok = c
        .analyze_frame(request(encoded(jpeg), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.faces.len(), 1);
}

#[tokio::test]
async fn oversized_image_is_refused_by_the_configured_limit() {
    let server = TestServer::start(|cmd| {
        let dir = tempfile::tempdir().unwrap().keep();
        let config = dir.join("affectd.toml");
        std::fs::write(&config, "[vision]\nmax_image_pixels = 100000\n").unwrap();
        cmd.arg("--config").arg(config);
    });
    let status = client(&server)
        .await
        .analyze_frame(request(encoded(photo("multi_face.jpg")), None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("over the limit of 100000 pixels"),
        "{}",
        status.message()
    );
}

/// A marked frame JPEG cannot carry (65536 pixels wide) is refused with what to ask for,
/// and the same frame comes back marked as PNG (it used to panic into INTERNAL).
#[tokio::test]
async fn a_marked_frame_too_wide_for_jpeg_is_refused_and_png_works() {
    let server = TestServer::start(|_| {});
    let mut affect = client(&server).await;
    let mut png = Vec::new();
    image::RgbImage::new(65_536, 256)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let ask = |format: ImageFormat| {
        request(
            encoded(png.clone()),
            Some(FrameOptions {
                return_marked_image: true,
                marked_image_format: format as i32,
                ..Default::default()
            }),
        )
    };
    let status = affect
        .analyze_frame(ask(ImageFormat::Jpeg))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("ask for PNG"),
        "{}",
        status.message()
    );
    let reply = affect
        .analyze_frame(ask(ImageFormat::Png))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.marked_image.starts_with(b"\x89PNG"));
}

/// Finding 2 of the hardening issue: concurrent small PNGs that decode large (4096x4096 at
/// 16 bits: a few hundred KB sent, 150 MB decoded) used to decode all at once. Decodes now
/// share `vision.max_decoding_bytes`: with 200 MB, 12 at once peak far below 12 x 150 MB,
/// and every one is answered.
#[tokio::test]
async fn concurrent_large_decodes_share_a_memory_budget() {
    let png = {
        let image: image::ImageBuffer<image::Rgb<u16>, Vec<u16>> =
            image::ImageBuffer::from_fn(4096, 4096, |x, y| {
                image::Rgb([(x % 256) as u16 * 200, (y % 256) as u16 * 200, 30_000])
            });
        let mut bytes = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes
    };
    eprintln!("the PNG: {} KB", png.len() / 1024);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("affectd.toml");
    std::fs::write(&config, "[vision]\nmax_decoding_bytes = 200000000\n").unwrap();
    let server = TestServer::start(|cmd| {
        cmd.arg("--config").arg(&config);
    });
    let affect = client(&server).await;
    let before = peak_rss_kib(server.child.id()) / 1024;
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let mut affect = affect.clone();
            let png = png.clone();
            tokio::spawn(async move { affect.analyze_frame(request(encoded(png), None)).await })
        })
        .collect();
    for call in calls {
        let answer = call.await.unwrap().expect("answered");
        assert_eq!(answer.into_inner().image_width, 4096);
    }
    let grown = (peak_rss_kib(server.child.id()) / 1024) - before;
    eprintln!("12 concurrent 4096x4096 16-bit PNGs: peak RSS grew {grown} MiB");
    assert!(grown < 800, "peak RSS grew {grown} MiB");
}
