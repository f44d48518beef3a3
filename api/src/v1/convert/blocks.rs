//! The block list. Lifting reuses the quarantine's `ReleaseRequest` (an id
//! and a reason), converted in `quarantine.rs`.

use super::enums::block_state;
use super::{ConvertError, optional_enum};
use crate::controller::v1 as pb;
use crate::v1::blocks::{Block, BlockQuery, BlockRequest};

impl From<BlockRequest> for pb::BlockRequest {
    fn from(r: BlockRequest) -> Self {
        Self { cidr: r.cidr, reason: r.reason, expires_in: r.expires_in }
    }
}

impl TryFrom<pb::BlockRequest> for BlockRequest {
    type Error = ConvertError;
    fn try_from(r: pb::BlockRequest) -> Result<Self, ConvertError> {
        Ok(Self { cidr: r.cidr, reason: r.reason, expires_in: r.expires_in })
    }
}

impl From<Block> for pb::Block {
    fn from(b: Block) -> Self {
        Self {
            id: b.id,
            cidr: b.cidr,
            state: pb::BlockState::from(b.state) as i32,
            reason: b.reason,
            created_by: b.created_by,
            created_ns: b.created_ns,
            expires_ns: b.expires_ns,
            lifted_by: b.lifted_by,
            ended_ns: b.ended_ns,
            end_reason: b.end_reason,
        }
    }
}

impl TryFrom<pb::Block> for Block {
    type Error = ConvertError;
    fn try_from(b: pb::Block) -> Result<Self, ConvertError> {
        Ok(Self {
            id: b.id,
            cidr: b.cidr,
            state: block_state(b.state, "state")?,
            reason: b.reason,
            created_by: b.created_by,
            created_ns: b.created_ns,
            expires_ns: b.expires_ns,
            lifted_by: b.lifted_by,
            ended_ns: b.ended_ns,
            end_reason: b.end_reason,
        })
    }
}

impl From<BlockQuery> for pb::BlockQuery {
    fn from(q: BlockQuery) -> Self {
        Self { state: q.state.map(|s| pb::BlockState::from(s) as i32), limit: q.limit, cursor: q.cursor }
    }
}

impl TryFrom<pb::BlockQuery> for BlockQuery {
    type Error = ConvertError;
    fn try_from(q: pb::BlockQuery) -> Result<Self, ConvertError> {
        Ok(Self { state: optional_enum(q.state, "state", block_state)?, limit: q.limit, cursor: q.cursor })
    }
}

page!(pb::BlockPage, Block);
