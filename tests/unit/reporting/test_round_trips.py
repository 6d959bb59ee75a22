from decimal import Decimal as D

from qa_engine.reporting.round_trips import Fill
from qa_engine.reporting.round_trips import RoundTripBook


def fill(ts, side, qty, price, fee="0"):
    return Fill(
        ts_ns=ts, instrument_id="BTCUSDT-LINEAR.BYBIT", side=side, quantity=D(qty), price=D(price), fee=D(fee)
    )


def test_long_open_and_close_realises_price_difference_minus_both_fees():
    book = RoundTripBook()
    assert book.on_fill(fill(1, "BUY", "2", "100", "0.2")) == []
    (trip,) = book.on_fill(fill(2, "SELL", "2", "110", "0.3"))
    # gross = (110 - 100) * 2 = 20; fees = 0.2 + 0.3; net = 19.5
    assert (trip.side, trip.gross_pnl, trip.fees, trip.net_pnl) == ("LONG", D("20"), D("0.5"), D("19.5"))
    assert (trip.entry_ts_ns, trip.exit_ts_ns, trip.quantity) == (1, 2, D("2"))


def test_flip_closes_one_round_trip_and_opens_the_next_with_prorated_fee():
    book = RoundTripBook()
    book.on_fill(fill(1, "SELL", "1", "100", "0.1"))
    # buy 3 at 90: 1 closes the short (gross +10), 2 open a long; the 0.3 fee splits 0.1 / 0.2
    (trip,) = book.on_fill(fill(2, "BUY", "3", "90", "0.3"))
    assert (trip.side, trip.gross_pnl, trip.fees, trip.net_pnl) == ("SHORT", D("10"), D("0.2"), D("9.8"))
    assert book.signed_quantity("BTCUSDT-LINEAR.BYBIT") == D("2")
    # open long of 2 at 90 with 0.2 entry fee; marked at 95: gross 10, net of entry fee 9.8
    assert book.unrealised_pnl("BTCUSDT-LINEAR.BYBIT", D("95")) == D("10")
    assert book.open_net_pnl("BTCUSDT-LINEAR.BYBIT", D("95")) == D("9.8")


def test_adds_and_partial_exits_form_one_round_trip_with_average_prices():
    book = RoundTripBook()
    book.on_fill(fill(1, "BUY", "1", "100", "1"))
    book.on_fill(fill(2, "BUY", "1", "110", "1"))  # average entry 105
    assert book.on_fill(fill(3, "SELL", "1", "120", "1")) == []  # realises (120 - 105) * 1 = 15
    (trip,) = book.on_fill(fill(4, "SELL", "1", "100", "1"))  # realises (100 - 105) * 1 = -5
    assert trip.entry_price == D("105") and trip.exit_price == D("110")
    assert (trip.quantity, trip.gross_pnl, trip.fees, trip.net_pnl) == (D("2"), D("10"), D("4"), D("6"))


def test_short_profits_when_price_falls():
    book = RoundTripBook()
    book.on_fill(fill(1, "SELL", "0.5", "200"))
    (trip,) = book.on_fill(fill(2, "BUY", "0.5", "150"))
    assert trip.gross_pnl == D("25")


def test_sum_of_round_trips_plus_open_position_equals_cash_flow_identity():
    # Independent identity: equity change = sum(-signed qty * price) - fees + open qty * mark
    fills = [
        fill(1, "BUY", "1", "100", "0.1"),
        fill(2, "SELL", "3", "105", "0.3"),
        fill(3, "BUY", "1", "95", "0.1"),
        fill(4, "BUY", "2.5", "98", "0.25"),
    ]
    book = RoundTripBook()
    closed = [trip for f in fills for trip in book.on_fill(f)]
    mark = D("101")
    cash = sum((-(1 if f.side == "BUY" else -1) * f.quantity * f.price - f.fee for f in fills), D(0))
    expected = cash + book.signed_quantity("BTCUSDT-LINEAR.BYBIT") * mark
    assert sum(t.net_pnl for t in closed) + book.open_net_pnl("BTCUSDT-LINEAR.BYBIT", mark) == expected
