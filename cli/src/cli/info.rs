//! `nexvitad info`: what a model folder holds.
use clap::Args;

use super::ModelArgs;

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(a: InfoArgs) -> nexvitad::Result<()> {
    let model = a.model.open()?;
    println!("model folder : {}", model.dir().display());
    println!("fingerprint  : {}", model.fingerprint());
    println!(
        "precision    : {}",
        model.manifest().describe_precision()
    );
    if let Some(v) = nexvitad::onnxruntime_version() {
        println!("onnx runtime : {v}");
    }
    println!("backbone graphs:");
    print!("{}", model.backbones().describe());
    println!("manifest (model.json):");
    println!("{}", model.manifest().to_json());
    Ok(())
}
