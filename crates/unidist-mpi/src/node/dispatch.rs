//! The node's incoming traffic: each message kind is handed to the concern that owns it.

use super::*;

impl Node {
    /// Handles one message from rank `src` (on the communication thread).
    pub fn handle(&self, src: u32, msg: Msg) {
        tracing::trace!(src, ?msg, "handle");
        match msg {
            Msg::Task {
                seq,
                func,
                args,
                outputs,
            } => self.receive_task(src, seq, func, args, outputs),
            Msg::ActorCreate {
                actor,
                class,
                args,
                seq,
            } => self.receive_actor_create(src, seq, actor, class, args),
            Msg::ActorCall {
                actor,
                method,
                args,
                outputs,
                seq,
            } => self.receive_actor_call(src, seq, actor, method, args, outputs),
            Msg::ActorKill { actor, now } => self.with(|s, e| self.kill_here(s, e, actor, now)),
            Msg::ActorLocate { actor } => self.with(|s, e| self.answer_locate(s, e, src, actor)),
            Msg::ActorWhere { actor, worker } => {
                self.with(|s, e| self.located(s, e, actor, worker))
            }
            Msg::ActorPin { actor } => self.with(|s, _| self.pin_actor(s, actor)),
            Msg::Done { seq, results } => self.with(|s, e| self.call_done(s, e, src, seq, results)),
            Msg::Push { id, value } => self.value_arrived(src, id, value, true),
            Msg::Data { id, value } => self.value_arrived(src, id, value, false),
            Msg::Failed { id, error } => self.with(|s, e| self.failure_arrived(s, e, id, error)),
            Msg::Fetch { id, requester } => self.with(|s, e| self.fetch(s, e, id, requester)),
            Msg::Subscribe { id } => self.with(|s, e| self.subscribe(s, e, src, id)),
            Msg::Ready { id, loc, error } => self.with(|s, e| self.readiness(s, e, id, loc, error)),
            Msg::Free { ids } => self.with(|s, e| self.free_here(s, e, &ids)),
            Msg::Borrow { id, delta } => self.with(|s, e| self.borrow(s, e, id, delta)),
            Msg::PeerLost { rank, why } => self.peer_lost(rank, &why),
            Msg::Shutdown
            | Msg::ShutdownAck
            | Msg::Finalize
            | Msg::RawBench { .. }
            | Msg::Alive => {}
        }
    }
}
