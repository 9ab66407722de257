//! Transfers across currencies: exchange rates and project totals.

use super::*;
use paycore_domain::fx_rate::FxRateCommand;
use paycore_domain::transfer::TransferCommand;

#[test]
fn fx_transfer_converts_at_the_configured_rate_rounding_down() {
    let mut world = World::new();
    world.set(A, eur(10_000));
    world.set(U, usd(500));
    let events = world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "1.0842", 30));
    assert_eq!(
        events,
        vec![(
            StreamRef::FxRate(Currency::EUR, Currency::USD),
            Event::FxRateSet(FxRateSet {
                from: Currency::EUR,
                to: Currency::USD,
                mid_rate: rate("1.0842"),
                spread_bps: 30,
                set_at: T0,
            })
        )]
    );
    let command = TransferCommand::CreateTransfer {
        id: trf(1),
        source_account_id: acc(A),
        destination_account_id: acc(U),
        value: eur(1_001),
        meta: Meta::default(),
        source_transaction_id: tx(950),
        destination_transaction_id: tx(951),
        pending: None,
    }
    .into();
    let events = world.ok_in(P, command);
    // 1.0842 less 0.30 % is 1.0809474; 10.01 EUR × 1.0809474 = 10.8202834… USD.
    let exchange = Exchange {
        destination_value: usd(1_082),
        mid_rate: rate("1.0842"),
        spread_bps: 30,
        rate_used: rate("1.0809474"),
    };
    let conversion = fx::convert(
        eur(1_001),
        Quote::new(Currency::EUR, Currency::USD, rate("1.0842"), 30).unwrap(),
    )
    .unwrap();
    assert_eq!(conversion.destination, exchange.destination_value);
    assert_eq!(conversion.rate_used, exchange.rate_used);
    assert_eq!(
        events,
        vec![
            (
                StreamRef::Transfer(trf(1)),
                Event::TransferCreated(TransferCreated {
                    id: trf(1),
                    project_id: prj(P),
                    source_account_id: acc(A),
                    destination_account_id: acc(U),
                    source_transaction_id: tx(950),
                    destination_transaction_id: tx(951),
                    value: eur(1_001),
                    meta: Meta::default(),
                    created_at: T0,
                    exchange: Some(exchange),
                })
            ),
            recorded(
                StreamRef::Account(acc(A)),
                Transaction {
                    id: tx(950),
                    account_id: acc(A),
                    project_id: prj(P),
                    kind: TransactionKind::TransferSource(trf(1)),
                    value: eur(-1_001),
                    balance_after: eur(8_999),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::EUR),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: eur(-1_001),
                    total_after: eur(8_999),
                    account_id: acc(A),
                    transaction_id: tx(950),
                })
            ),
            recorded(
                StreamRef::Account(acc(U)),
                Transaction {
                    id: tx(951),
                    account_id: acc(U),
                    project_id: prj(P),
                    kind: TransactionKind::TransferDestination(trf(1)),
                    value: usd(1_082),
                    balance_after: usd(1_582),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::USD),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: usd(1_082),
                    total_after: usd(1_582),
                    account_id: acc(U),
                    transaction_id: tx(951),
                })
            ),
        ]
    );
    let stored = world
        .store
        .state(&StreamRef::Transfer(trf(1)))
        .as_transfer()
        .unwrap();
    assert_eq!(stored.exchange, Some(exchange));
    assert_eq!(world.total(P, Currency::EUR), 8_999);
    assert_eq!(world.total(P, Currency::USD), 1_582);
}

#[test]
fn fx_transfer_needs_a_configured_rate_for_its_direction() {
    let mut world = World::new();
    world.set(A, eur(10_000));
    world.set(U, usd(10_000));
    assert_refused(
        world.run(P, transfer(trf(1), acc(A), acc(U), eur(100))),
        Refusal::FxRateUnavailable,
    );
    world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "1.08", 0));
    world.ok_in(P, transfer(trf(1), acc(A), acc(U), eur(100)));
    assert_eq!(world.balance(U), 10_108);
    // EUR→USD says nothing about USD→EUR.
    assert_refused(
        world.run(P, transfer(trf(2), acc(U), acc(A), usd(100))),
        Refusal::FxRateUnavailable,
    );
    // A removed rate is unavailable again.
    let events = world.ok_in(
        P,
        FxRateCommand::RemoveFxRate {
            from: Currency::EUR,
            to: Currency::USD,
        }
        .into(),
    );
    assert_eq!(
        events,
        vec![(
            StreamRef::FxRate(Currency::EUR, Currency::USD),
            Event::FxRateRemoved(FxRateRemoved { removed_at: T0 })
        )]
    );
    assert_refused(
        world.run(P, transfer(trf(3), acc(A), acc(U), eur(100))),
        Refusal::FxRateUnavailable,
    );
    for (from, to) in [(Currency::EUR, Currency::USD), (Currency::USD, Currency::EUR)] {
        assert_not_found(
            world.run(P, FxRateCommand::RemoveFxRate { from, to }.into()),
            "exchange rate",
            format!("{from}→{to}"),
        );
    }
    // Set again, it applies again.
    world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "2", 0));
    world.ok_in(P, transfer(trf(3), acc(A), acc(U), eur(100)));
    assert_eq!(world.balance(U), 10_308);
    assert_eq!(world.balance(A), 9_800);
}

#[test]
fn fx_rates_are_validated_and_tiny_amounts_refused() {
    let mut world = World::new();
    world.set(A, eur(10_000));
    assert_eq!(
        invalid_fields(world.run(P, set_fx_rate(Currency::EUR, Currency::EUR, "1", 0))),
        ["rate"]
    );
    assert_eq!(
        invalid_fields(world.run(P, set_fx_rate(Currency::EUR, Currency::USD, "1", 10_000))),
        ["rate"]
    );
    world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "0.001", 0));
    // 1 cent is a thousandth of a cent: nothing to credit.
    assert_refused(
        world.run(P, transfer(trf(1), acc(A), acc(U), eur(1))),
        Refusal::FxConversionImpossible,
    );
    world.ok_in(P, transfer(trf(1), acc(A), acc(U), eur(1_999)));
    assert_eq!(world.balance(U), 1);
}

#[test]
fn fx_transfer_cannot_take_the_source_currency_total_below_zero() {
    let mut world = World::new();
    world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "1.1", 0));
    world.set(A, eur(100));
    // N may go negative, and a same-currency transfer leaves the total alone.
    world.ok_in(P, transfer(trf(1), acc(N), acc(B), eur(500)));
    assert_eq!(world.total(P, Currency::EUR), 100);
    // Money leaving EUR for USD must exist in the project's EUR total.
    assert_refused(
        world.run(P, transfer(trf(2), acc(N), acc(U), eur(101))),
        Refusal::ProjectBalanceNegative,
    );
    world.ok_in(P, transfer(trf(2), acc(N), acc(U), eur(100)));
    assert_eq!(world.total(P, Currency::EUR), 0);
    assert_eq!(world.total(P, Currency::USD), 110);
    assert_eq!(world.balance(N), -600);
    // A source without the allowance still needs the funds.
    assert_refused(
        world.run(P, transfer(trf(3), acc(A), acc(U), eur(101))),
        Refusal::InsufficientFunds,
    );
}
