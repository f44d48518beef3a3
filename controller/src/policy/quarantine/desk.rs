//! The quarantine book behind its own short lock, with the view of the
//! cluster that the last reconcile published. A quarantine is decided and
//! handed to the agents' fast path while it is made durable, without
//! waiting for the policy side, which a compile or a reconcile can hold for
//! a long time.
//!
//! The one ordering that matters: a reconcile reads the cut pods and takes
//! its generation in one hold of this lock, and a decision's `floor` is the
//! generation after the last one taken. So every desired state numbered
//! `floor` or later was built after the decision and carries it, and an
//! agent can hold the fast-path change until it applies one of those.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bulkhead_policy::quarantine::Target;
use tokio::sync::watch;

use crate::auth::Principal;
use crate::error::ControllerError;
use crate::policy::quarantine::{Book, CutPod, Record};
use crate::policy::store::Model;

/// What the last reconcile published: the model it built desired states
/// from and the endpoint id of each pod uid it pushed.
#[derive(Debug, Default)]
pub struct View {
    /// The model.
    pub model: Arc<Model>,
    /// Endpoint ids by pod uid.
    pub endpoints: BTreeMap<String, u32>,
    /// The generation of those desired states.
    pub generation: u64,
}

/// A quarantine made or released, and what the agents must do now.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineCut {
    /// The record.
    pub record: Record,
    /// Whether the request made it (false: an active one of the same target was returned).
    pub created: bool,
    /// The pods it cuts off (or, on release, cut off until now), with their
    /// endpoint ids (none: not pushed to its node yet).
    pub pods: Vec<(CutPod, Option<u32>)>,
    /// Every desired state numbered from here on carries this decision: the
    /// agents hold the fast-path change until they apply one at least as new.
    pub floor: u64,
}

/// What a reconcile takes from the desk in one hold of its lock.
#[derive(Debug)]
pub struct Turn {
    /// The uids of every pod an active quarantine cuts off.
    pub cut: BTreeSet<String>,
    /// The generation the reconcile numbers its desired states with.
    pub generation: u64,
    /// Quarantines the reconcile itself ended, made or released (deleted
    /// pods, Quarantine objects), with the action and why, to audit.
    pub changed: Vec<(Record, &'static str, String)>,
}

struct Ledger {
    book: Book,
    /// The last generation a reconcile took.
    generation: u64,
}

/// The quarantine book, shared by the service layer and the policy side.
#[derive(Clone)]
pub struct Desk {
    ledger: Arc<Mutex<Ledger>>,
    view: watch::Receiver<Arc<View>>,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").finish_non_exhaustive()
    }
}

impl Desk {
    /// A desk over `book`, and the sender the policy side publishes views on.
    pub fn new(book: Book) -> (Self, watch::Sender<Arc<View>>) {
        let (tx, view) = watch::channel(Arc::new(View::default()));
        (Self { ledger: Arc::new(Mutex::new(Ledger { book, generation: 0 })), view }, tx)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Ledger>, ControllerError> {
        self.ledger.lock().map_err(|_| ControllerError::Serve {
            what: "quarantine book",
            message: "lock poisoned by an earlier panic".into(),
        })
    }

    /// The view the last reconcile published.
    pub fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    /// Runs `f` on the book (reads only).
    pub fn read<T>(&self, f: impl FnOnce(&Book) -> T) -> Result<T, ControllerError> {
        Ok(f(&self.lock()?.book))
    }

    /// Quarantines `target`, durably, on the published view. A new
    /// decision goes to `announce` before it is saved, so the agents can cut
    /// while the disk syncs; an error after the announcement means it could
    /// not be saved and was undone, and the next desired state (it lacks the
    /// decision and is numbered from its floor) lifts what the agents did.
    pub fn quarantine(
        &self,
        target: Target,
        reason: &str,
        by: &Principal,
        announce: impl FnOnce(QuarantineCut),
    ) -> Result<QuarantineCut, ControllerError> {
        let view = self.view();
        let mut ledger = self.lock()?;
        let floor = ledger.generation + 1;
        let now = crate::observation::flows::now_ns();
        let (record, staged) = ledger.book.stage_create(target, reason, &by.signature(), None, &view.model, now)?;
        let pods = with_endpoints(&view, ledger.book.pods_of(&record, &view.model));
        let cut = QuarantineCut { record, created: staged.is_some(), pods, floor };
        if let Some(staged) = staged {
            announce(cut.clone());
            ledger.book.commit(staged)?;
        }
        Ok(cut)
    }

    /// Releases quarantine `id`, durably; the pods it let go (those no
    /// other active quarantine still covers). Unlike a quarantine, it is
    /// announced only once saved: a release that cannot be saved must not
    /// have let anything through.
    pub fn release(
        &self,
        id: u64,
        reason: &str,
        by: &Principal,
        announce: impl FnOnce(QuarantineCut),
    ) -> Result<QuarantineCut, ControllerError> {
        let view = self.view();
        let mut ledger = self.lock()?;
        let floor = ledger.generation + 1;
        let now = crate::observation::flows::now_ns();
        let (record, pods, staged) = ledger.book.stage_release(id, &by.signature(), reason, &view.model, now)?;
        let still = ledger.book.cut_uids(&view.model);
        let pods = with_endpoints(&view, pods.into_iter().filter(|p| !still.contains(&p.uid)).collect());
        let cut = QuarantineCut { record, created: false, pods, floor };
        ledger.book.commit(staged)?;
        announce(cut.clone());
        Ok(cut)
    }

    /// A reconcile's turn on `model`: ends quarantines of deleted pods,
    /// follows Quarantine objects, and returns the cut pods with the
    /// generation `next` numbers, taken under the same lock. A failure to
    /// persist what the reconcile changed is logged: the book in memory
    /// stays what is enforced.
    pub fn turn(&self, model: &Model, next: impl FnOnce() -> u64) -> Result<Turn, ControllerError> {
        let mut ledger = self.lock()?;
        let now = crate::observation::flows::now_ns();
        let mut changed = Vec::new();
        match ledger.book.end_deleted(model, now) {
            Ok(ended) => {
                changed.extend(ended.into_iter().map(|r| (r, "quarantine-ended", "the pod was deleted".to_string())))
            }
            Err(e) => tracing::error!(error = %e, "ending quarantines of deleted pods"),
        }
        match ledger.book.follow_objects(model, now) {
            Ok((made, released)) => {
                changed.extend(made.into_iter().map(|r| {
                    let why = r.reason.clone();
                    (r, "quarantine", why)
                }));
                changed.extend(
                    released
                        .into_iter()
                        .map(|r| (r, "release", "the Quarantine object was deleted or changed".to_string())),
                );
            }
            Err(e) => tracing::error!(error = %e, "following Quarantine objects"),
        }
        let cut = ledger.book.cut_uids(model);
        ledger.generation = next();
        Ok(Turn { cut, generation: ledger.generation, changed })
    }
}

fn with_endpoints(view: &View, pods: Vec<CutPod>) -> Vec<(CutPod, Option<u32>)> {
    pods.into_iter()
        .map(|p| {
            let id = view.endpoints.get(&p.uid).copied();
            (p, id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state dir removed on drop.
    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn desk(name: &str) -> (Desk, watch::Sender<Arc<View>>, Dir) {
        let dir = Dir(std::env::temp_dir().join(format!("bulkhead-desk-{name}-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let book = Book::load(&dir.0.join("quarantines.json")).unwrap();
        let (desk, tx) = Desk::new(book);
        (desk, tx, dir)
    }

    #[test]
    fn a_decision_is_carried_by_every_generation_from_its_floor() {
        let (desk, _tx, _dir) = desk("floor");
        let model = Model::default();
        let turn = desk.turn(&model, || 41).unwrap();
        assert_eq!(turn.generation, 41);
        let target = Target::Workload { namespace: "shop".into(), name: "web".into() };
        let mut announced = None;
        let cut = desk.quarantine(target, "test", &Principal::system("test"), |c| announced = Some(c)).unwrap();
        assert_eq!(announced.as_ref(), Some(&cut), "a new decision is announced before it is saved");
        // The reconcile that took 41 may have read the book before the
        // decision, so the decision holds only from 42.
        assert_eq!(cut.floor, 42);
        assert!(cut.created);
        let again = desk
            .quarantine(cut.record.target.clone(), "again", &Principal::system("test"), |_| panic!("nothing new"))
            .unwrap();
        assert!(!again.created, "an active quarantine of the same target is returned");
        assert_eq!(again.record.id, cut.record.id);
    }

    #[test]
    fn a_decision_that_cannot_be_saved_is_undone_after_its_announcement() {
        let (desk, _tx, dir) = desk("unsaved");
        std::fs::remove_dir_all(&dir.0).unwrap();
        let target = Target::Workload { namespace: "shop".into(), name: "web".into() };
        let mut announced = None;
        let err = desk.quarantine(target, "test", &Principal::system("test"), |c| announced = Some(c)).unwrap_err();
        assert!(matches!(err, ControllerError::Io { .. }), "{err}");
        assert!(announced.is_some_and(|c| c.created), "announced before the save was tried");
        assert_eq!(desk.read(|b| b.active()).unwrap(), 0, "not durable, so not made");
    }

    #[test]
    fn a_pod_missing_from_the_published_view_is_not_found() {
        let (desk, _tx, _dir) = desk("missing");
        let target = Target::Pod { namespace: "shop".into(), name: "web-0".into() };
        let err = desk.quarantine(target, "test", &Principal::system("test"), |_| panic!("not made")).unwrap_err();
        assert!(matches!(err, ControllerError::NotFound(_)), "{err}");
        assert_eq!(desk.read(|b| b.active()).unwrap(), 0, "nothing recorded");
    }
}
