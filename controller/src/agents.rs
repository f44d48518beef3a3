//! How the controller reaches each node's agent: a Unix socket named at
//! start (one host), or the connection the agent itself dialed to the
//! agents port over mTLS. Agents on the network register by connecting;
//! the node comes from their certificate, never from what they say.

pub mod budget;
pub mod directory;
pub mod enroll;
pub mod listen;
pub mod revoked;

pub use directory::Directory;
