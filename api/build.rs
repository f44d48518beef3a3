//! Generates the gRPC types and stubs from the versioned .proto files.

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().build_server(true).build_client(true).compile_protos(
        &[
            "proto/bulkhead/flow/v1/flow.proto",
            "proto/bulkhead/agent/v1/agent.proto",
            "proto/bulkhead/agent/v1/enrollment.proto",
            "proto/bulkhead/controller/v1/controller.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
