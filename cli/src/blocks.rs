//! The block list from the command line: `bulkhead block add|list|remove`,
//! through the controller, which saves each block and pushes it to every node.

use anyhow::{Result, bail};
use bulkhead_api::v1::blocks::{Block, BlockQuery, BlockRequest, BlockState};
use bulkhead_api::v1::quarantine::ReleaseQuery;
use clap::Subcommand;

use crate::client::{Target, all_pages};
use crate::closed_loop::{Output, print_doc, time};

/// What `bulkhead block` does.
#[derive(Subcommand, Debug)]
pub enum BlockCommand {
    /// Drop an IP or CIDR both ways on every node, before any policy.
    Add {
        /// "203.0.113.7", "203.0.113.0/24" or IPv6; host bits must be zero.
        cidr: String,
        /// Why (required; goes to the audit log).
        #[arg(long, default_value = "")]
        reason: String,
        /// Lift it by itself after this long: 90s, 30m, 2h, 7d [default: until removed].
        #[arg(long, value_name = "SPAN")]
        expires_in: Option<String>,
    },
    /// The block list, newest first.
    List {
        /// Only blocks in force.
        #[arg(long)]
        active: bool,
    },
    /// Lift a block by its id.
    Remove {
        id: u64,
        /// Why (required; goes to the audit log).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

fn state(s: BlockState) -> &'static str {
    match s {
        BlockState::Active => "active",
        BlockState::Lifted => "lifted",
        BlockState::Expired => "expired",
    }
}

fn until(b: &Block) -> String {
    match (b.state, b.expires_ns, b.ended_ns) {
        (BlockState::Active, Some(t), _) => format!("until {}", time(t)),
        (BlockState::Active, None, _) => "until removed".into(),
        (_, _, Some(t)) => format!("ended {}", time(t)),
        _ => String::new(),
    }
}

fn print_one(b: &Block) {
    println!("block {}: {} {} ({}), by {}: {}", b.id, b.cidr, state(b.state), until(b), b.created_by, b.reason);
}

/// Runs one `bulkhead block` command.
pub async fn run(target: &Target, command: BlockCommand, output: Output) -> Result<()> {
    let mut c = target.client().await?;
    match command {
        BlockCommand::Add { cidr, reason, expires_in } => {
            if reason.trim().is_empty() {
                bail!("--reason: say why (it is recorded and audited)");
            }
            let b = c.block(BlockRequest { cidr, reason, expires_in }).await?;
            if !print_doc(&b, output)? {
                print_one(&b);
            }
        }
        BlockCommand::Remove { id, reason } => {
            if reason.trim().is_empty() {
                bail!("--reason: say why (it is recorded and audited)");
            }
            let b = c.unblock(id, ReleaseQuery { reason }).await?;
            if !print_doc(&b, output)? {
                print_one(&b);
            }
        }
        BlockCommand::List { active } => {
            let all = all_pages!(c.blocks(BlockQuery {
                state: active.then_some(BlockState::Active),
                limit: Some(1000),
                cursor: None
            }));
            if print_doc(&all, output)? {
                return Ok(());
            }
            if all.is_empty() {
                println!("no blocks");
                return Ok(());
            }
            println!("{:<5} {:<43} {:<8} {:<36} {:<22} REASON", "ID", "CIDR", "STATE", "WHEN", "BY");
            for b in &all {
                println!(
                    "{:<5} {:<43} {:<8} {:<36} {:<22} {}",
                    b.id,
                    b.cidr,
                    state(b.state),
                    until(b),
                    b.created_by,
                    b.reason
                );
            }
        }
    }
    Ok(())
}
