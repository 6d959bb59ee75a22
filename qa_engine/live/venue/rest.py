"""The venue's REST routes (Bybit v5 paths Nautilus' adapter calls; PROTOCOL.md has the table).

Public market routes answer from the bars replayed so far; private routes check the signature, the
rate-limit fault, then ask the books. Every answer is HTTP 200 with Bybit's envelope, errors included
(retCode != 0), as Bybit does; an unknown path is HTTP 404.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING
from typing import Any

from aiohttp import web

from qa_engine.live.venue.auth import check_rest_signature
from qa_engine.live.venue.auth import envelope
from qa_engine.live.venue.auth import wall_ms
from qa_engine.live.venue.faults import RATE_LIMIT

if TYPE_CHECKING:
    from qa_engine.live.venue.server import LoopbackBybit

ACCOUNT_INFO = {
    "marginMode": "REGULAR_MARGIN",
    "updatedTime": "0",
    "unifiedMarginStatus": 4,
    "dcpStatus": "OFF",
    "timeWindow": 10,
    "smpGroup": 0,
    "isMasterTrader": False,
    "spotHedgingStatus": "OFF",
}


def _listing(items: list[Any], category: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {"list": items, "nextPageCursor": ""}
    if category:
        result["category"] = "linear"
    return result


def _json(body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, headers=headers)


def rate_limit_headers(limited: bool) -> dict[str, str]:
    return {
        "X-Bapi-Limit": "50",
        "X-Bapi-Limit-Status": "0" if limited else "49",
        "X-Bapi-Limit-Reset-Timestamp": str(wall_ms() + 1_000),
    }


class RestRoutes:
    """Route handlers bound to one venue."""

    def __init__(self, venue: LoopbackBybit) -> None:
        self.venue = venue

    def add_to(self, app: web.Application) -> None:
        get, post = self._public_get, self._signed
        app.router.add_get("/v5/market/time", self.server_time)
        app.router.add_get("/v5/market/instruments-info", get(self.instruments))
        app.router.add_get("/v5/market/kline", get(self.klines))
        app.router.add_get("/v5/market/tickers", get(self.tickers))
        app.router.add_get("/v5/market/funding/history", get(self.funding_history))
        app.router.add_get("/v5/account/info", post(lambda q, b: envelope(ACCOUNT_INFO)))
        app.router.add_get("/v5/user/query-api", post(self.query_api))
        app.router.add_get("/v5/account/wallet-balance", post(self.wallet_balance))
        app.router.add_get("/v5/account/fee-rate", post(self.fee_rates))
        app.router.add_get("/v5/position/list", post(self.positions))
        app.router.add_get("/v5/order/realtime", post(self.open_orders))
        app.router.add_get("/v5/order/history", post(self.order_history))
        app.router.add_get("/v5/execution/list", post(self.executions))
        for path, action in (
            ("/v5/order/create", "place_order"),
            ("/v5/order/amend", "amend_order"),
            ("/v5/order/cancel", "cancel_order"),
            ("/v5/order/cancel-all", "cancel_all"),
        ):
            app.router.add_post(path, post(self._order_route(action)))
        app.router.add_post("/v5/position/set-leverage", post(self.set_leverage))
        app.router.add_post("/v5/position/switch-mode", post(lambda q, b: envelope({})))
        app.router.add_post("/v5/account/set-margin-mode", post(lambda q, b: envelope({"reasons": []})))

    # --- wrappers ---------------------------------------------------------------------------------

    def _public_get(self, handler: Any) -> Any:
        async def route(request: web.Request) -> web.Response:
            self.venue.counts["rest_requests"] += 1
            return _json(handler(dict(request.query), {}))

        return route

    def _signed(self, handler: Any) -> Any:
        async def route(request: web.Request) -> web.Response:
            venue = self.venue
            venue.counts["rest_requests"] += 1
            raw = await request.text() if request.method == "POST" else request.query_string
            problem = check_rest_signature(request.headers, raw, venue.api_key, venue.api_secret)
            if problem is not None:
                venue.counts["auth_failures"] += 1
                return _json(envelope({}, *problem))
            if venue.faults.rate_limited():
                return _json(envelope({}, *RATE_LIMIT), rate_limit_headers(True))
            try:
                body = json.loads(raw) if request.method == "POST" and raw else {}
            except json.JSONDecodeError:
                return _json(envelope({}, 10001, "params error: body is not JSON"))
            reply = handler(dict(request.query), body)
            if hasattr(reply, "__await__"):
                reply = await reply
            return _json(reply, rate_limit_headers(False))

        return route

    def _order_route(self, action: str) -> Any:
        async def handler(query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
            code, message, result = await self.venue.order_request(action, body, source="rest")
            return envelope(result, code, message)

        return handler

    # --- public -----------------------------------------------------------------------------------

    async def server_time(self, request: web.Request) -> web.Response:
        # the replay's clock once bars flow (as Bybit's clock matches its bars); request signatures are
        # still checked against the wall clock (auth.py), as the clients sign with theirs
        now_ns = (self.venue.clock_ms() or wall_ms()) * 1_000_000
        return _json(envelope({"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)}))

    def instruments(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        entries = self.venue.instruments if query.get("category", "linear") == "linear" else []
        if "symbol" in query:
            entries = [entry for entry in entries if entry["symbol"] == query["symbol"]]
        return envelope(_listing(entries))

    def klines(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        symbol = query.get("symbol", "")
        bars = self.venue.published_bars(symbol)
        start, end = int(query.get("start", 0)), int(query.get("end", 2**63))
        chosen = [bar for bar in bars if start <= bar.start_ms <= end]
        chosen = chosen[-int(query.get("limit", 200)) :]
        rows = [
            [
                str(bar.start_ms),
                *(str(v) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.turnover)),
            ]
            for bar in reversed(chosen)  # Bybit lists klines newest first
        ]
        return envelope({"category": "linear", "symbol": symbol, "list": rows})

    def tickers(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        items = []
        for entry in self.venue.instruments:
            bars = self.venue.published_bars(entry["symbol"])
            if not bars or query.get("symbol", entry["symbol"]) != entry["symbol"]:
                continue
            last = bars[-1]
            price = str(last.close)
            items.append(
                {
                    "symbol": entry["symbol"],
                    "lastPrice": price,
                    "indexPrice": price,
                    "markPrice": price,
                    "prevPrice24h": str(bars[max(0, len(bars) - 288)].open),
                    "price24hPcnt": "0",
                    "highPrice24h": str(max(bar.high for bar in bars[-288:])),
                    "lowPrice24h": str(min(bar.low for bar in bars[-288:])),
                    "prevPrice1h": price,
                    "openInterest": "0",
                    "openInterestValue": "0",
                    "turnover24h": str(sum(bar.turnover for bar in bars[-288:])),
                    "volume24h": str(sum(bar.volume for bar in bars[-288:])),
                    "fundingRate": "0",
                    "nextFundingTime": "0",
                    "predictedDeliveryPrice": "",
                    "basisRate": "",
                    "deliveryFeeRate": "",
                    "deliveryTime": "0",
                    "ask1Size": "1",
                    "bid1Price": price,
                    "ask1Price": price,
                    "bid1Size": "1",
                    "basis": "",
                }
            )
        return envelope(_listing(items))

    def funding_history(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        symbol = query.get("symbol", "")
        now_ms = self.venue.simulated_ms
        rates = self.venue.funding_rates.get(symbol, {})
        items = [
            {"symbol": symbol, "fundingRate": str(rate), "fundingRateTimestamp": str(ts)}
            for ts, rate in sorted(rates.items(), reverse=True)
            if now_ms is not None and ts <= now_ms
        ][: int(query.get("limit", 200))]
        return envelope({"category": "linear", "list": items})

    # --- private ----------------------------------------------------------------------------------

    def query_api(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        return envelope(
            {
                "id": "1",
                "note": "qa loopback venue",
                "apiKey": self.venue.api_key,
                "readOnly": 0,
                "secret": "",
                "permissions": {"ContractTrade": ["Order", "Position"], "Wallet": ["AccountTransfer"]},
                "ips": ["*"],
                "type": 1,
                "deadlineDay": -1,
                "expiredAt": "1970-01-01T00:00:00Z",
                "createdAt": "2025-01-01T00:00:00Z",
                "unified": 0,
                "uta": 1,
                "userID": 1,
                "inviterID": 0,
                "vipLevel": "No VIP",
                "mktMakerLevel": "0",
                "affiliateID": 0,
                "rsaPublicKey": "",
                "isMaster": True,
                "parentUid": "0",
                "kycLevel": "LEVEL_1",
                "kycRegion": "",
            },
            ret_msg="",
        )

    def wallet_balance(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        wallet = self.venue.books.wallet_balance()
        return envelope(wallet if "list" in wallet else {"list": [wallet]})

    def fee_rates(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        return envelope({"list": self.venue.books.fee_rates(query.get("symbol"))})

    def positions(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        return envelope(_listing(self.venue.books.positions(query.get("symbol"))))

    def open_orders(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        books = self.venue.books
        orders = books.open_orders(query.get("symbol"))
        wanted = {key: query[key] for key in ("orderId", "orderLinkId") if query.get(key)}
        if wanted:  # a query of one order may find it among the closed ones too, as Bybit's does
            orders = [order for order in orders + books.order_history(query.get("symbol"))]
            orders = [order for order in orders if all(order.get(k) == v for k, v in wanted.items())][:1]
        return envelope(_listing(orders))

    def order_history(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        orders = self.venue.books.order_history(query.get("symbol"))
        wanted = {key: query[key] for key in ("orderId", "orderLinkId") if query.get(key)}
        orders = [order for order in orders if all(order.get(k) == v for k, v in wanted.items())]
        return envelope(_listing(orders[: int(query.get("limit", 50))]))

    def executions(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        fills = self.venue.books.executions(query.get("symbol"))
        return envelope(_listing(fills[: int(query.get("limit", 50))]))

    def set_leverage(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        try:
            buy, sell = Decimal(str(body.get("buyLeverage"))), Decimal(str(body.get("sellLeverage")))
        except ArithmeticError:
            return envelope({}, 10001, "params error: buyLeverage / sellLeverage must be numbers")
        reply = self.venue.books.set_leverage(str(body.get("symbol", "")), buy, sell)
        self.venue.spawn_events(reply.events)
        return envelope(reply.result, reply.ret_code, reply.ret_msg)
