//! Generates the client from the committed spec at build time with
//! progenitor's `Generator` (its documented build.rs interface: the same
//! generator as the `generate_api!` macro, but the spec path can come from
//! the environment, so `.ci/e2e` can point it at another document, and the
//! generated code is a readable file, `$OUT_DIR/healthcare.rs`).
//!
//! HEALTHCARE_SPEC=path  the OpenAPI document (default: ../../../openapi/openapi.json)

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let spec_path = match env::var_os("HEALTHCARE_SPEC") {
        Some(path) => PathBuf::from(path),
        None => manifest_dir.join("../../../openapi/openapi.json"),
    };
    println!("cargo:rerun-if-env-changed=HEALTHCARE_SPEC");
    println!("cargo:rerun-if-changed={}", spec_path.display());

    let text = fs::read_to_string(&spec_path)
        .unwrap_or_else(|e| panic!("cannot read the spec {}: {e}", spec_path.display()));
    let spec: openapiv3::OpenAPI = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{} is not an OpenAPI 3.0 document: {e}",
            spec_path.display()
        )
    });

    let mut settings = progenitor::GenerationSettings::default();
    settings
        .with_interface(progenitor::InterfaceStyle::Builder)
        .with_tag(progenitor::TagStyle::Merged);
    let mut generator = progenitor::Generator::new(&settings);
    let tokens = generator.generate_tokens(&spec).unwrap_or_else(|e| {
        panic!(
            "progenitor cannot generate a client from {}: {e}",
            spec_path.display()
        )
    });
    let file: syn::File = syn::parse2(tokens).expect("progenitor emitted invalid Rust");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("healthcare.rs");
    fs::write(&out, prettyplease::unparse(&file)).unwrap();
}
