//! What the command router adds around every family's decision: the
//! idempotency key's record, and nothing written by a refusal.

use paycore_domain::command::IDEMPOTENCY_WINDOW_SECONDS;
use paycore_domain::customer::CustomerCommand;
use paycore_domain::events::*;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::*;

use crate::common::ledger::*;
use crate::common::*;

// ---------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------

#[test]
fn idempotency_key_is_recorded_with_the_command() {
    let mut world = World::new();
    let command = with_key(
        envelope(prj(P), open_account(acc(70), Currency::EUR, false)),
        "req-1",
        7,
    );
    let decision = world.store.execute(&command).unwrap();
    let events = events(&decision);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, StreamRef::Account(acc(70)));
    // Kept under its keyed digest, never as sent.
    let stored = idempotency_key(prj(P), "req-1", 7, false).stored;
    assert!(!stored.contains("req-1"), "{stored}");
    assert_eq!(
        events[1],
        (
            StreamRef::Idempotency(prj(P), stored),
            Event::IdempotencyKeyUsed(IdempotencyKeyUsed {
                project_id: prj(P),
                verbatim_key: None,
                request_hash: [7; 32],
                resource: ResourceRef::Account(acc(70)),
                used_at: T0,
            })
        )
    );
}

#[test]
fn retry_with_same_key_and_parameters_replays_the_original() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let first = with_key(
        envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    world.store.execute(&first).unwrap();
    let log = world.store.log.len();
    // The retry carries fresh server-side IDs but the same request hash.
    let retry = with_key(
        at(
            prj(P),
            T0.plus_seconds(23 * HOUR),
            transfer(trf(2), acc(A), acc(B), eur(100)),
        ),
        "pay-1",
        1,
    );
    assert_eq!(
        world.store.execute(&retry),
        Ok(Decision::Replay {
            resource: ResourceRef::Transfer(trf(1))
        })
    );
    assert_eq!(world.store.log.len(), log, "a replay writes nothing");
    assert_eq!(world.store.balance(acc(A)), 900, "the money moved once");
    assert!(world.store.state(&StreamRef::Transfer(trf(2))).is_empty());
}

/// A log written before keys were hashed holds records named by the key as
/// sent. While such a record may be live, a retry looks the key up by
/// itself too and still has one effect; the new record is a digest.
#[test]
fn records_kept_under_the_key_as_sent_still_count() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let first = envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100)));
    world.store.execute(&first).unwrap();
    // What a build before hashing wrote with that transfer.
    world.store.apply(
        &StreamRef::Idempotency(prj(P), "pay-legacy".into()),
        &Event::IdempotencyKeyUsed(IdempotencyKeyUsed {
            project_id: prj(P),
            verbatim_key: Some("pay-legacy".into()),
            request_hash: [1; 32],
            resource: ResourceRef::Transfer(trf(1)),
            used_at: T0,
        }),
    );
    let retry = |hash: u8, look_up_verbatim: bool| {
        let mut retry = at(
            prj(P),
            T0.plus_seconds(HOUR),
            transfer(trf(2), acc(A), acc(B), eur(100)),
        );
        retry.idempotency = Some(idempotency_key(prj(P), "pay-legacy", hash, look_up_verbatim));
        retry
    };
    assert!(
        retry(1, true)
            .streams()
            .contains(&StreamRef::Idempotency(prj(P), "pay-legacy".into()))
    );
    assert_eq!(
        world.store.execute(&retry(1, true)),
        Ok(Decision::Replay {
            resource: ResourceRef::Transfer(trf(1))
        })
    );
    assert_refused(
        world.store.execute(&retry(2, true)),
        Refusal::IdempotencyKeyReused,
    );
    assert_eq!(world.store.balance(acc(A)), 900, "the money moved once");
    // Without the verbatim lookup (no such record can be live any more) the
    // key is new, and its record is a digest.
    let decision = world.store.execute(&retry(1, false)).unwrap();
    let recorded = events(&decision);
    let (stream, _) = recorded.last().unwrap();
    assert_eq!(
        stream,
        &StreamRef::Idempotency(prj(P), idempotency_key(prj(P), "pay-legacy", 1, false).stored)
    );
}

#[test]
fn same_key_with_other_parameters_within_24h_is_refused() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let first = with_key(
        envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    world.store.execute(&first).unwrap();
    let last_instant = T0.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS).micros() - 1;
    for now in [T0, T0.plus_seconds(1), Timestamp::from_micros(last_instant)] {
        let other = with_key(
            at(prj(P), now, transfer(trf(2), acc(A), acc(B), eur(200))),
            "pay-1",
            2,
        );
        assert_refused(world.store.execute(&other), Refusal::IdempotencyKeyReused);
    }
    assert_eq!(world.store.balance(acc(A)), 900);
}

#[test]
fn key_is_usable_again_after_24h() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let first = with_key(
        envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    world.store.execute(&first).unwrap();
    let later = T0.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS);
    // Same parameters after the window: a new effect, not a replay.
    let again = with_key(
        at(prj(P), later, transfer(trf(2), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    let decision = world.store.execute(&again).unwrap();
    assert_eq!(resource(&decision), ResourceRef::Transfer(trf(2)));
    assert_eq!(world.store.balance(acc(A)), 800);
    // The key's window restarts from its new use.
    let other = with_key(
        at(
            prj(P),
            later.plus_seconds(HOUR),
            transfer(trf(3), acc(A), acc(B), eur(5)),
        ),
        "pay-1",
        9,
    );
    assert_refused(world.store.execute(&other), Refusal::IdempotencyKeyReused);
    let retry = with_key(
        at(
            prj(P),
            later.plus_seconds(HOUR),
            transfer(trf(3), acc(A), acc(B), eur(100)),
        ),
        "pay-1",
        1,
    );
    assert_eq!(
        world.store.execute(&retry),
        Ok(Decision::Replay {
            resource: ResourceRef::Transfer(trf(2))
        })
    );
}

#[test]
fn idempotency_keys_are_per_project() {
    let mut world = World::new();
    world.ok(prj(OTHER), create_project(prj(OTHER), Environment::Sandbox));
    let mine = with_key(
        envelope(prj(P), open_account(acc(80), Currency::EUR, false)),
        "k",
        1,
    );
    world.store.execute(&mine).unwrap();
    let theirs = with_key(
        envelope(prj(OTHER), open_account(acc(81), Currency::EUR, false)),
        "k",
        1,
    );
    let decision = world.store.execute(&theirs).unwrap();
    assert_eq!(resource(&decision), ResourceRef::Account(acc(81)));
    assert!(
        world
            .store
            .state(&StreamRef::Account(acc(81)))
            .as_account()
            .is_some()
    );
}

#[test]
fn a_failed_command_does_not_use_up_its_key() {
    let mut world = World::new();
    let attempt = with_key(
        envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    assert_refused(world.store.execute(&attempt), Refusal::InsufficientFunds);
    assert!(
        world
            .store
            .state(&StreamRef::Idempotency(prj(P), "pay-1".into()))
            .is_empty()
    );
    world.set(A, eur(100)).unwrap();
    let decision = world.store.execute(&attempt).unwrap();
    assert_eq!(resource(&decision), ResourceRef::Transfer(trf(1)));
    assert_eq!(world.store.balance(acc(B)), 100);
}

#[test]
fn idempotency_key_shape_is_checked() {
    for bad in [
        String::new(),
        "has space".into(),
        "tab\t".into(),
        "ñ".into(),
        "k".repeat(256),
    ] {
        let error = IdempotencyKey::new(&bad, prj(P), SECRET, [0; 32], false).unwrap_err();
        let DomainError::Invalid(violations) = error else {
            panic!("{bad:?}: expected invalid");
        };
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "idempotency-key", "{bad:?}");
    }
    for good in ["a", "req_01-ABC.x:y", &"k".repeat(255)] {
        assert!(
            IdempotencyKey::new(good, prj(P), SECRET, [0; 32], false).is_ok(),
            "{good}"
        );
    }
}

// ---------------------------------------------------------------------------
// Refusals write nothing
// ---------------------------------------------------------------------------

#[test]
fn every_refused_or_invalid_command_writes_nothing() {
    let mut world = World::new();
    world.set(A, eur(100)).unwrap();
    let (bad, _) = bad_identity();
    let failing = vec![
        create_project(prj(P), Environment::Sandbox),
        CustomerCommand::UpdateCustomer {
            id: cus(1),
            identity: None,
            meta: None,
        }
        .into(),
        CustomerCommand::CreateCustomer {
            id: cus(2),
            identity: Some(bad),
            meta: Meta::default(),
        }
        .into(),
        open_account(acc(A), Currency::EUR, false),
        set_allowance(acc(99), true),
        set_balance(acc(B), eur(-1), tx(900)),
        set_balance(acc(B), usd(1), tx(900)),
        set_balance(acc(N), eur(-101), tx(900)),
        transfer(trf(1), acc(A), acc(B), eur(101)),
        transfer(trf(1), acc(A), acc(B), eur(0)),
        transfer(trf(1), acc(A), acc(A), eur(1)),
        transfer(trf(1), acc(A), acc(U), eur(1)),
        transfer(trf(1), acc(A), acc(B), usd(1)),
        TransferCommand::UpdateTransfer {
            id: trf(1),
            meta: Meta::default(),
        }
        .into(),
        ProjectCommand::RevokeApiKey { id: key(1) }.into(),
    ];
    for command in failing {
        let states = world.store.states.clone();
        let log = world.store.log.len();
        let keyed = with_key(envelope(prj(P), command.clone()), "fail", 3);
        for envelope in [envelope(prj(P), command.clone()), keyed] {
            let result = world.store.execute(&envelope);
            assert!(result.is_err(), "{command:?} should fail, got {result:?}");
            assert_eq!(world.store.states, states, "{command:?} changed state");
            assert_eq!(world.store.log.len(), log, "{command:?} wrote events");
        }
    }
    // Live projects refuse magic balances without writing.
    world.ok(prj(L), open_account(acc(90), Currency::EUR, true));
    let log = world.store.log.len();
    assert!(world.run(prj(L), set_balance(acc(90), eur(1), tx(901))).is_err());
    assert_eq!(world.store.log.len(), log);
}
