//! `moor image`: the image store from the command line. The work is in
//! `runtime::image`; this parses arguments and prints results.

mod progress;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use runtime::image::archive;
use runtime::image::build::{self as image_build, BuildOptions};
use runtime::image::bundle;
use runtime::image::platform::Platform;
use runtime::image::reference::Reference;
use runtime::image::registry::{RegistriesConfig, RegistryOptions, Timeouts};
use runtime::image::store::Store;
use runtime::image::transfer;

use self::progress::Reporter;

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The platform to pull, import and run (default: this machine's).
    #[arg(long, global = true)]
    platform: Option<String>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Fetch an image from a registry (through the mirrors of the registries file).
    Pull {
        /// The image, as docker names it: `[HOST[:PORT]/]NAME[:TAG][@sha256:HEX]`.
        reference: String,
        /// Talk plain HTTP to this registry.
        #[arg(long)]
        plain_http: bool,
    },
    /// Send an image to a registry, as REFERENCE or as TARGET.
    Push {
        /// The image in the store.
        reference: String,
        /// Where to push it (default: REFERENCE itself).
        target: Option<String>,
        /// Talk plain HTTP to this registry.
        #[arg(long)]
        plain_http: bool,
    },
    /// Import OCI layout directories or tars and `docker save` tars (gzip or zstd too).
    Import {
        /// Archives (tar, tar.gz, tar.zst) or OCI layout directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Tag the imported image (when the archive holds one image).
        #[arg(short, long)]
        tag: Option<String>,
    },
    /// Import every archive in a directory not imported before (appliance preloads).
    Preload {
        /// The directory of archives (read once each; the store records what it took).
        dir: PathBuf,
    },
    /// Write images to an OCI layout tar.
    Save {
        /// The images to write, by reference.
        #[arg(required = true)]
        references: Vec<String>,
        /// The archive to write (made beside it, then renamed into place).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// List images.
    #[command(alias = "list")]
    Ls {
        /// A table for people or JSON for programs.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Only the references.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show an image's manifest and config.
    Inspect {
        /// The image, by reference or digest.
        reference: String,
    },
    /// Give an image another name.
    Tag {
        /// The image in the store.
        source: String,
        /// The new name.
        target: String,
    },
    /// Remove image names (their content goes at the next prune).
    Rm {
        /// The names to remove.
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Remove content no image name or container uses.
    Prune,
    /// Build an image from DIR/image.yaml.
    Build {
        /// The build directory: image.yaml and the files it copies.
        dir: PathBuf,
        /// Name the image (repeatable).
        #[arg(short, long)]
        tag: Vec<String>,
        /// The spec file (default DIR/image.yaml).
        #[arg(short, long)]
        file: Option<PathBuf>,
    },
    /// Make an OCI bundle (config.json and an overlay rootfs) of an image, for
    /// `moor runtime run --bundle DIR`.
    Bundle {
        /// The image in the store.
        reference: String,
        /// The bundle directory to make (must not exist).
        dir: PathBuf,
    },
    /// Unmount and remove a bundle made by `bundle`.
    Unbundle {
        /// A bundle directory made by `moor image bundle`.
        dir: PathBuf,
    },
}

fn reference(text: &str) -> anyhow::Result<Reference> {
    Ok(text.parse::<Reference>()?)
}

fn registry_options(
    registries: Option<&Path>,
    plain_http: bool,
) -> anyhow::Result<RegistryOptions> {
    let path = registries.unwrap_or(Path::new(runtime::image::registry::DEFAULT_PATH));
    let config = RegistriesConfig::load(path)?;
    Ok(RegistryOptions {
        config: Arc::new(config),
        plain_http,
        timeouts: Timeouts::default(),
        user_agent: format!("moor/{}", env!("CARGO_PKG_VERSION")),
    })
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Runs one `moor image` verb.
pub fn main(args: ImageArgs, data_dir: &Path, registries: Option<&Path>) -> anyhow::Result<()> {
    let platform = match &args.platform {
        Some(p) => p.parse::<Platform>()?,
        None => Platform::host(),
    };
    let store = Store::open(data_dir)
        .with_context(|| format!("open the image store in {}", data_dir.display()))?;
    let reporter = Reporter::new();
    let events = |e| reporter.event(e);
    match args.verb {
        Verb::Pull {
            reference: r,
            plain_http,
        } => {
            let r = reference(&r)?;
            let pulled = transfer::pull(
                &store,
                registry_options(registries, plain_http)?,
                &r,
                &platform,
                &events,
            )?;
            println!("{r} {}", pulled.digest);
        }
        Verb::Push {
            reference: r,
            target,
            plain_http,
        } => {
            let source = reference(&r)?;
            let target = match target {
                Some(t) => reference(&t)?,
                None => source.clone(),
            };
            let digest = transfer::push(
                &store,
                registry_options(registries, plain_http)?,
                &source,
                &target,
                &events,
            )?;
            println!("{target} {digest}");
        }
        Verb::Import { paths, tag } => {
            let tag = tag.as_deref().map(reference).transpose()?;
            let mut all = Vec::new();
            for path in &paths {
                all.extend(archive::import(&store, path, &platform)?);
            }
            if let Some(t) = &tag {
                match all.as_slice() {
                    [one] => store.tag(t, &one.digest)?,
                    _ => bail!(
                        "--tag needs an archive with exactly one image; these hold {}",
                        all.len()
                    ),
                }
            }
            for i in &all {
                match (&i.reference, &tag) {
                    (_, Some(t)) => println!("{t} {}", i.digest),
                    (Some(r), None) => println!("{r} {}", i.digest),
                    (None, None) => println!(
                        "{} {} (no name: tag it with `moor image tag` or it goes at the next prune)",
                        i.ref_name.as_deref().unwrap_or("-"),
                        i.digest
                    ),
                }
            }
        }
        Verb::Preload { dir } => {
            let report = archive::import_preload_dir(&store, &dir, &platform)?;
            for (path, images) in &report.imported {
                for i in images {
                    let name = i
                        .reference
                        .as_ref()
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into());
                    println!("imported {} {name} {}", path.display(), i.digest);
                }
            }
            for path in &report.skipped {
                println!("unchanged {}", path.display());
            }
            for (_, err) in &report.failed {
                // The error names the archive itself.
                eprintln!("moor: preload: {err}");
            }
            if !report.failed.is_empty() {
                bail!(
                    "{} of the archives in {} could not be imported",
                    report.failed.len(),
                    dir.display()
                );
            }
        }
        Verb::Save { references, output } => {
            let refs = references
                .iter()
                .map(|r| reference(r))
                .collect::<anyhow::Result<Vec<_>>>()?;
            archive::save(&store, &refs, &output)?;
            println!("{}", output.display());
        }
        Verb::Ls { format, quiet } => {
            let images = store.usage(&platform)?;
            if quiet {
                for i in &images {
                    println!("{}", i.reference);
                }
            } else if format == Format::Json {
                let rows: Vec<_> = images
                    .iter()
                    .map(|i| {
                        json!({
                            "reference": i.reference.to_string(),
                            "digest": i.digest.to_string(),
                            "platform": i.platform.as_ref().map(|p| p.to_string()),
                            "size": i.size,
                            "created": i.created,
                            "complete": i.complete,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                let rows: Vec<[String; 5]> = images
                    .iter()
                    .map(|i| {
                        [
                            i.reference.to_string(),
                            i.digest.to_string().chars().take(19).collect(),
                            i.platform
                                .as_ref()
                                .map(|p| p.to_string())
                                .unwrap_or_else(|| "-".into()),
                            if i.complete {
                                human(i.size)
                            } else {
                                format!("{} (partial)", human(i.size))
                            },
                            i.created.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    crate::table::render(
                        &["REFERENCE", "DIGEST", "PLATFORM", "SIZE", "CREATED"],
                        &rows
                    )
                );
            }
        }
        Verb::Inspect { reference: r } => {
            let r = reference(&r)?;
            let digest = store
                .resolve(&r)?
                .with_context(|| format!("{r} is not in the store"))?;
            let image = store.image(&digest, &platform)?;
            let manifest: serde_json::Value =
                serde_json::from_slice(&store.read_blob(&image.manifest_digest, 4 << 20)?)?;
            let config: serde_json::Value =
                serde_json::from_slice(&store.read_blob(&image.config_digest, 8 << 20)?)?;
            let out = json!({
                "reference": r.to_string(),
                "digest": digest.to_string(),
                "index": image.index_digest.as_ref().map(|d| d.to_string()),
                "manifestDigest": image.manifest_digest.to_string(),
                "platform": image.platform.to_string(),
                "manifest": manifest,
                "config": config,
                "layers": image.layers.iter().map(|l| json!({
                    "digest": l.blob_digest.to_string(),
                    "diffId": l.diff_id.to_string(),
                    "chainId": l.chain_id.to_string(),
                    "unpacked": store.has_layer(&l.chain_id),
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Verb::Tag { source, target } => {
            let s = reference(&source)?;
            let t = reference(&target)?;
            let digest = store
                .resolve(&s)?
                .with_context(|| format!("{s} is not in the store"))?;
            store.tag(&t, &digest)?;
        }
        Verb::Rm { references } => {
            for r in &references {
                let r = reference(r)?;
                if !store.untag(&r)? {
                    bail!("{r} is not in the store");
                }
            }
        }
        Verb::Prune => {
            let report = store.gc()?;
            println!(
                "removed {} blobs and {} layers, {} freed",
                report.blobs_removed,
                report.layers_removed,
                human(report.bytes_freed)
            );
        }
        Verb::Build { dir, tag, file } => {
            let mut opts = BuildOptions::new(&dir);
            opts.spec = file;
            opts.tags = tag
                .iter()
                .map(|t| reference(t))
                .collect::<anyhow::Result<_>>()?;
            let built = image_build::build(&store, &opts)?;
            for t in &opts.tags {
                println!("{t} {}", built.manifest);
            }
            if opts.tags.is_empty() {
                println!("{}", built.manifest);
            }
        }
        Verb::Bundle { reference: r, dir } => {
            let r = reference(&r)?;
            let digest = store
                .resolve(&r)?
                .with_context(|| format!("{r} is not in the store"))?;
            let image = store.image(&digest, &platform)?;
            let dir = bundle::create(&store, &image, &dir)?;
            println!("{}", dir.display());
        }
        Verb::Unbundle { dir } => bundle::remove(&store, &dir)?,
    }
    Ok(())
}
