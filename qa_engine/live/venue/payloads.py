"""Bybit v5 record shapes of the loopback venue: the dicts VenueBooks puts in its events and query results.

Field names, value types (numbers as strings, ms timestamps as strings, `reduceOnly` a bool,
`positionIdx` / `triggerDirection` ints) follow the real payloads in tests/data/bybit_api_samples
(ws_account_order_filled.json, ws_account_execution.json, ws_account_position.json,
ws_account_wallet.json and their http_get_* twins;
tests/unit/live/test_venue_books.py checks every field and type against them). Every field NautilusTrader's
Bybit adapter deserializes without a default (crates/adapters/bybit/src/websocket/messages.rs,
http/models.rs) is present: a record that lacks one is dropped by the live node. One record serves both
the private websocket and the REST query of the same kind (the REST list entries carry a few extra
fields, e.g. `isLeverage`; unknown fields are ignored by the adapter).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

MONEY_DECIMALS = 8  # USDT amounts as Bybit sends them ("9647.75537647")


def decimals_of(step: Decimal) -> int:
    """The decimals of a step as the venue writes it: 0.001 -> 3, 0.10 -> 2 (Nautilus' precision), 1 -> 0."""
    exponent = step.as_tuple().exponent
    return max(-int(exponent), 0)


def fixed(value: Decimal, decimals: int) -> str:
    """`value` with exactly `decimals` decimals ("0.100", "95900.1")."""
    return f"{value:.{decimals}f}"


def money(value: Decimal) -> str:
    """An amount to at most 8 decimals, trailing zeros dropped ("0" for zero), as Bybit's wallet does."""
    text = f"{value.quantize(Decimal(1).scaleb(-MONEY_DECIMALS)):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def order_record(order: Any, spec: Any) -> dict[str, Any]:
    """A v5 order record (ws topic `order`, GET /v5/order/realtime and /history)."""
    price_decimals, qty_decimals = decimals_of(spec.tick_size), decimals_of(spec.qty_step)
    leaves = order.qty - order.cum_exec_qty if order.is_open else Decimal(0)
    reference = order.price if order.price is not None else order.last_price_on_created
    conditional = order.trigger_price is not None
    return {
        "category": "linear",
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderLinkId": order.order_link_id,
        "side": order.side,
        "orderType": order.order_type,
        "cancelType": order.cancel_type,
        "price": fixed(order.price, price_decimals) if order.price is not None else "0",
        "qty": fixed(order.qty, qty_decimals),
        "orderIv": "",
        "timeInForce": order.time_in_force,
        "orderStatus": order.status,
        "lastPriceOnCreated": fixed(order.last_price_on_created, price_decimals),
        "reduceOnly": order.reduce_only,
        "leavesQty": fixed(leaves, qty_decimals),
        "leavesValue": money(leaves * (reference or Decimal(0))),
        "cumExecQty": fixed(order.cum_exec_qty, qty_decimals),
        "cumExecValue": money(order.cum_exec_value),
        "avgPrice": money(order.cum_exec_value / order.cum_exec_qty) if order.cum_exec_qty else "",
        "blockTradeId": "",
        "positionIdx": 0,
        "cumExecFee": money(order.cum_exec_fee),
        "createdTime": str(order.created_ms),
        "updatedTime": str(order.updated_ms),
        "rejectReason": order.reject_reason,
        "stopOrderType": "Stop" if conditional else "",
        "tpslMode": "",
        "triggerPrice": fixed(order.trigger_price, price_decimals) if conditional else "0",
        "takeProfit": "",
        "stopLoss": "",
        "tpTriggerBy": "",
        "slTriggerBy": "",
        "tpLimitPrice": "",
        "slLimitPrice": "",
        "triggerDirection": order.trigger_direction,
        "triggerBy": order.trigger_by if conditional else "",
        "closeOnTrigger": order.close_on_trigger,
        "placeType": "order",
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "feeCurrency": "USDT",
        "createType": order.create_type,
        "isLeverage": "",
    }


def execution_record(fill: Any, spec: Any) -> dict[str, Any]:
    """A v5 execution record (ws topic `execution`, GET /v5/execution/list)."""
    price_decimals, qty_decimals = decimals_of(spec.tick_size), decimals_of(spec.qty_step)
    return {
        "category": "linear",
        "symbol": fill.symbol,
        "closedSize": fixed(fill.closed_size, qty_decimals),
        "execFee": money(fill.fee),
        "execId": fill.exec_id,
        "execPrice": fixed(fill.price, price_decimals),
        "execQty": fixed(fill.qty, qty_decimals),
        "execType": fill.exec_type,
        "execValue": money(fill.qty * fill.price),
        "feeRate": f"{fill.fee_rate:f}",
        "tradeIv": "",
        "markIv": "",
        "blockTradeId": "",
        "markPrice": fixed(fill.mark_price, price_decimals),
        "indexPrice": "",
        "underlyingPrice": "",
        "leavesQty": fixed(fill.leaves_qty, qty_decimals),
        "orderId": fill.order_id,
        "orderLinkId": fill.order_link_id,
        "orderPrice": fixed(fill.order_price, price_decimals),
        "orderQty": fixed(fill.order_qty, qty_decimals),
        "orderType": fill.order_type,
        "stopOrderType": fill.stop_order_type,
        "side": fill.side,
        "execTime": str(fill.time_ms),
        "isLeverage": "0",
        "isMaker": fill.is_maker,
        "seq": fill.seq,
        "createType": fill.create_type,
        "feeCurrency": "USDT",
    }


def position_record(position: Any, spec: Any, mark: Decimal, maintenance_rate: Decimal) -> dict[str, Any]:
    """A v5 position record (ws topic `position`; GET /v5/position/list, which names the entry `avgPrice`)."""
    price_decimals, qty_decimals = decimals_of(spec.tick_size), decimals_of(spec.qty_step)
    size = abs(position.signed_qty)
    side = "Buy" if position.signed_qty > 0 else "Sell" if position.signed_qty < 0 else ""
    entry = position.average_entry
    value = size * entry
    initial = size * mark / position.leverage
    maintenance = size * mark * maintenance_rate
    entry_text = money(entry) if size else "0"
    return {
        "category": "linear",
        "symbol": position.symbol,
        "side": side,
        "size": fixed(size, qty_decimals),
        "positionIdx": 0,
        "tradeMode": 0,
        "positionValue": money(value),
        "riskId": 1,
        "riskLimitValue": "2000000",
        "entryPrice": entry_text,
        "avgPrice": entry_text,
        "markPrice": fixed(mark, price_decimals),
        "leverage": f"{position.leverage.normalize():f}",
        "positionBalance": money(initial),
        "autoAddMargin": 0,
        "positionIM": money(initial),
        "positionIMByMp": money(initial),
        "positionMM": money(maintenance),
        "positionMMByMp": money(maintenance),
        "liqPrice": position.liquidation_price_text,
        "bustPrice": "",
        "tpslMode": "Full",
        "takeProfit": "0",
        "stopLoss": "0",
        "trailingStop": "0",
        "unrealisedPnl": money((mark - entry) * position.signed_qty) if size else "0",
        "sessionAvgPrice": "",
        "curRealisedPnl": money(position.cur_realised_pnl),
        "cumRealisedPnl": money(position.cum_realised_pnl),
        "positionStatus": "Normal",
        "adlRankIndicator": 2 if size else 0,
        "createdTime": str(position.created_ms),
        "updatedTime": str(position.updated_ms),
        "seq": position.seq,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
    }


def wallet_record(coin: str, totals: dict[str, Decimal]) -> dict[str, Any]:
    """A v5 unified wallet record (ws topic `wallet`; one entry of GET /v5/account/wallet-balance)."""
    coin_entry = {
        "coin": coin,
        "equity": money(totals["equity"]),
        "usdValue": money(totals["equity"]),
        "walletBalance": money(totals["wallet_balance"]),
        "availableToWithdraw": money(max(totals["available"], Decimal(0))),
        "availableToBorrow": "",
        "borrowAmount": "0",
        "accruedInterest": "0",
        "totalOrderIM": money(totals["order_im"]),
        "totalPositionIM": money(totals["position_im"]),
        "totalPositionMM": money(totals["position_mm"]),
        "unrealisedPnl": money(totals["unrealised"]),
        "cumRealisedPnl": money(totals["cum_realised"]),
        "bonus": "0",
        "locked": "0",
        "collateralSwitch": True,
        "marginCollateral": True,
        "spotBorrow": "0",
    }
    initial = totals["order_im"] + totals["position_im"]
    equity = totals["equity"]
    return {
        "accountType": "UNIFIED",
        "accountIMRate": money(initial / equity) if equity > 0 else "0",
        "accountMMRate": money(totals["position_mm"] / equity) if equity > 0 else "0",
        "accountLTV": "0",
        "totalEquity": money(equity),
        "totalWalletBalance": money(totals["wallet_balance"]),
        "totalMarginBalance": money(equity),
        "totalAvailableBalance": money(max(equity - initial, Decimal(0))),
        "totalPerpUPL": money(totals["unrealised"]),  # the REST name
        "totalPerpUpl": money(totals["unrealised"]),  # the websocket's
        "totalInitialMargin": money(initial),
        "totalMaintenanceMargin": money(totals["position_mm"]),
        "coin": [coin_entry],
    }
