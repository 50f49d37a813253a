//! Generates the affect.v1 gRPC code. protoc comes from the `protoc-bin-vendored` crate so
//! that no system protoc is needed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/affect/v1/affect.proto",
        "proto/affect/v1/recordings.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("affect_v1_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    dashboard_assets(&out_dir);
    Ok(())
}

/// The dashboard's third-party assets (uPlot) from the npm registry, by the lock file in
/// `src/http/dashboard`, installed into OUT_DIR and embedded in the binary. Without npm or
/// the registry (or its cache) the binary builds without them, and the dashboard answers
/// 503 saying so; everything else works.
fn dashboard_assets(out_dir: &std::path::Path) {
    use std::process::Command;
    let source = PathBuf::from("src/http/dashboard");
    println!("cargo:rerun-if-changed=src/http/dashboard/package.json");
    println!("cargo:rerun-if-changed=src/http/dashboard/package-lock.json");
    println!("cargo:rerun-if-env-changed=AFFECTD_NPM");
    let dest = out_dir.join("dashboard");
    let files = [
        ("UPLOT_JS", "node_modules/uplot/dist/uPlot.iife.min.js"),
        ("UPLOT_CSS", "node_modules/uplot/dist/uPlot.min.css"),
    ];
    let installed = || files.iter().all(|(_, f)| dest.join(f).is_file());
    let mut why_not = String::new();
    if !installed() {
        let copied = std::fs::create_dir_all(&dest).and_then(|()| {
            for f in ["package.json", "package-lock.json"] {
                std::fs::copy(source.join(f), dest.join(f))?;
            }
            Ok(())
        });
        let npm = std::env::var("AFFECTD_NPM").unwrap_or_else(|_| "npm".into());
        why_not = match copied.and_then(|()| {
            Command::new(&npm)
                .args([
                    "ci",
                    "--prefer-offline",
                    "--no-audit",
                    "--no-fund",
                    "--ignore-scripts",
                ])
                .current_dir(&dest)
                .output()
        }) {
            Ok(out) if out.status.success() => String::new(),
            Ok(out) => format!(
                "`{npm} ci` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => format!("cannot run `{npm} ci` ({e}): install Node.js and npm"),
        };
    }
    let mut generated = String::new();
    if installed() {
        for (name, file) in files {
            generated += &format!(
                "pub const {name}: Option<&[u8]> = Some(include_bytes!({:?}));\n",
                dest.join(file)
            );
        }
        generated += "pub const MISSING: &str = \"\";\n";
    } else {
        println!("cargo:warning=the dashboard is built without its assets: {why_not}");
        for (name, _) in files {
            generated += &format!("pub const {name}: Option<&[u8]> = None;\n");
        }
        generated += &format!(
            "pub const MISSING: &str = {:?};\n",
            format!(
                "the dashboard's assets were not built ({why_not}); rebuild affectd with npm and the npm registry (or its cache) at hand"
            )
        );
    }
    std::fs::write(out_dir.join("dashboard_assets.rs"), generated)
        .expect("write dashboard_assets.rs into OUT_DIR");
}
