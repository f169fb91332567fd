"""The open gateway driven only through the real, unmodified python-alipay-sdk (PyPI), as a
shop integrated with Alipay would drive it: the gateway URL and the keys are the only change.

The server is `formica demo`; its sandbox.json names the app, the keys and funded buyers.
Run by crates/formica/tests/it/sdk.rs, which starts the demo and sets:
  FORMICA_SANDBOX   path of sandbox.json
  FORMICA_BIN       the formica binary (for `formica admin payment-code`)
  FORMICA_DATA_DIR  the demo's data directory
"""

import datetime
import http.server
import json
import os
import subprocess
import threading
import urllib.parse
import urllib.request
import uuid

import pytest
from alipay import AliPay

SANDBOX = json.load(open(os.environ["FORMICA_SANDBOX"]))
BUYER = SANDBOX["buyers"][0]


def client(private_key_path=SANDBOX["app_private_key_path"], app_id=SANDBOX["app_id"]):
    alipay = AliPay(
        appid=app_id,
        app_notify_url=None,
        app_private_key_string=open(private_key_path).read(),
        alipay_public_key_string=open(SANDBOX["alipay_public_key_path"]).read(),
        sign_type="RSA2",
    )
    # The SDK has no gateway argument: this attribute is the one change a shop makes.
    alipay._gateway = SANDBOX["gateway_url"]
    return alipay


@pytest.fixture
def alipay():
    return client()


def number(prefix):
    return "%s%s" % (prefix, uuid.uuid4().hex[:16])


def payment_code(login=BUYER["login"]):
    out = subprocess.run(
        [os.environ["FORMICA_BIN"], "admin", "payment-code",
         "--data-dir", os.environ["FORMICA_DATA_DIR"], "--user", login],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def pay(alipay, amount, **kwargs):
    no = number("P")
    result = alipay.api_alipay_trade_pay(
        out_trade_no=no, scene="bar_code", auth_code=payment_code(),
        subject="Longjing tea", total_amount=amount, **kwargs)
    return no, result


def test_precreate_then_query(alipay):
    no = number("Q")
    result = alipay.api_alipay_trade_precreate(
        subject="Pu'er {cake}", out_trade_no=no, total_amount=12.5)
    assert result["code"] == "10000", result
    assert result["out_trade_no"] == no
    assert "/qr/" in result["qr_code"]
    # The QR code opens the checkout for the amount.
    page = urllib.request.urlopen(result["qr_code"]).read().decode()
    assert "12.50" in page
    queried = alipay.api_alipay_trade_query(out_trade_no=no)
    assert queried["code"] == "10000"
    assert queried["trade_status"] == "WAIT_BUYER_PAY"
    assert queried["total_amount"] == "12.50"


def test_pay_with_a_payment_code_then_query(alipay):
    no, paid = pay(alipay, 88.88)
    assert paid["code"] == "10000", paid
    assert paid["total_amount"] == "88.88"
    assert paid["buyer_pay_amount"] == "88.88"
    assert paid["fund_bill_list"][0]["fund_channel"] == "ALIPAYACCOUNT"
    queried = alipay.api_alipay_trade_query(trade_no=paid["trade_no"])
    assert queried["trade_status"] == "TRADE_SUCCESS"
    assert queried["out_trade_no"] == no


def test_a_payment_code_works_once(alipay):
    code = payment_code()
    first = alipay.api_alipay_trade_pay(
        out_trade_no=number("P"), scene="bar_code", auth_code=code,
        subject="tea", total_amount="1.00")
    assert first["code"] == "10000", first
    second = alipay.api_alipay_trade_pay(
        out_trade_no=number("P"), scene="bar_code", auth_code=code,
        subject="tea", total_amount="1.00")
    assert second["code"] == "40004"
    assert second["sub_code"] == "ACQ.PAYMENT_AUTH_CODE_INVALID"


def test_partial_refunds_then_refund_query(alipay):
    no, paid = pay(alipay, "30.00")
    assert paid["code"] == "10000", paid
    first = alipay.api_alipay_trade_refund(
        refund_amount="10.00", out_trade_no=no, out_request_no="R1")
    assert (first["code"], first["fund_change"], first["refund_fee"]) == ("10000", "Y", "10.00")
    again = alipay.api_alipay_trade_refund(
        refund_amount="10.00", out_trade_no=no, out_request_no="R1")
    assert (again["fund_change"], again["refund_fee"]) == ("N", "10.00")
    second = alipay.api_alipay_trade_refund(
        refund_amount=5, out_trade_no=no, out_request_no="R2")
    assert second["refund_fee"] == "15.00"
    too_much = alipay.api_alipay_trade_refund(
        refund_amount="15.01", out_trade_no=no, out_request_no="R3")
    assert too_much["code"] == "40004"
    assert too_much["sub_code"] == "ACQ.REASON_TRADE_REFUND_FEE_ERR"
    found = alipay.api_alipay_trade_fastpay_refund_query(out_request_no="R2", out_trade_no=no)
    assert (found["code"], found["refund_amount"], found["total_amount"]) == ("10000", "5.00", "30.00")
    missing = alipay.api_alipay_trade_fastpay_refund_query(out_request_no="R3", out_trade_no=no)
    assert missing["code"] == "10000" and "refund_amount" not in missing


def test_close(alipay):
    no = number("C")
    assert alipay.api_alipay_trade_precreate(
        subject="tea", out_trade_no=no, total_amount="3.00")["code"] == "10000"
    closed = alipay.api_alipay_trade_close(out_trade_no=no)
    assert closed["code"] == "10000", closed
    assert alipay.api_alipay_trade_query(out_trade_no=no)["trade_status"] == "TRADE_CLOSED"
    again = alipay.api_alipay_trade_close(out_trade_no=no)
    assert again["sub_code"] == "ACQ.TRADE_STATUS_ERROR"


def test_cancel(alipay):
    no, paid = pay(alipay, "20.00")
    assert paid["code"] == "10000", paid
    cancelled = alipay.api_alipay_trade_cancel(out_trade_no=no)
    assert (cancelled["code"], cancelled["action"], cancelled["retry_flag"]) == ("10000", "refund", "N")
    assert alipay.api_alipay_trade_query(out_trade_no=no)["trade_status"] == "TRADE_CLOSED"


def test_transfer(alipay):
    # The shop's balance has what the tests before paid it.
    pay(alipay, "50.00")
    biz = {
        "out_biz_no": number("B"),
        "trans_amount": "2.00",
        "product_code": "TRANS_ACCOUNT_NO_PWD",
        "biz_scene": "DIRECT_TRANSFER",
        "payee_info": {"identity": SANDBOX["buyers"][1]["login"], "identity_type": "ALIPAY_LOGON_ID"},
    }
    sent = alipay.server_api("alipay.fund.trans.uni.transfer", biz)
    assert (sent["code"], sent["status"]) == ("10000", "SUCCESS"), sent
    again = alipay.server_api("alipay.fund.trans.uni.transfer", biz)
    assert again["order_id"] == sent["order_id"]


def test_deposit_frozen_charged_and_the_rest_unfrozen(alipay):
    # A counter freezes a deposit with the buyer's payment code, charges part of it at the
    # end of the rental and gives back the rest: the fund authorisation methods.
    frozen = alipay.server_api("alipay.fund.auth.order.freeze", {
        "auth_code": payment_code(), "auth_code_type": "bar_code",
        "out_order_no": number("D"), "out_request_no": number("R"),
        "order_title": "bike deposit", "amount": "30.00", "product_code": "PRE_AUTH"})
    assert (frozen["code"], frozen["status"], frozen["fund_amount"]) == ("10000", "SUCCESS", "30.00"), frozen
    paid = alipay.server_api("alipay.trade.pay", {
        "out_trade_no": number("P"), "auth_no": frozen["auth_no"], "product_code": "PRE_AUTH",
        "subject": "two hours", "total_amount": "8.00", "auth_confirm_mode": "NOT_COMPLETE"})
    assert (paid["code"], paid["total_amount"]) == ("10000", "8.00"), paid
    rest = alipay.server_api("alipay.fund.auth.order.unfreeze", {
        "auth_no": frozen["auth_no"], "out_request_no": number("U"), "amount": "22.00",
        "remark": "bike returned"})
    assert (rest["code"], rest["status"], rest["amount"]) == ("10000", "SUCCESS", "22.00"), rest
    detail = alipay.server_api("alipay.fund.auth.operation.detail.query", {
        "auth_no": frozen["auth_no"], "operation_id": paid["trade_no"]})
    assert (detail["order_status"], detail["operation_type"], detail["total_pay_amount"]) == (
        "FINISH", "PAY", "8.00"), detail


def test_bill_download(alipay):
    # Daily bills are for days that are over (Alipay: T-1), in the platform's zone (UTC+8).
    yesterday = (datetime.datetime.utcnow() + datetime.timedelta(hours=8) - datetime.timedelta(days=1)).date()
    result = alipay.server_api(
        "alipay.data.dataservice.bill.downloadurl.query",
        {"bill_type": "trade", "bill_date": yesterday.isoformat()},
    )
    assert result["code"] == "10000", result
    csv = urllib.request.urlopen(result["bill_download_url"]).read().decode()
    assert csv.startswith("type,time,trade_no,out_trade_no")
    assert "# net," in csv
    today = alipay.server_api(
        "alipay.data.dataservice.bill.downloadurl.query",
        {"bill_type": "trade", "bill_date": (yesterday + datetime.timedelta(days=1)).isoformat()},
    )
    assert today["sub_code"] == "isp.bill_not_exist"


class Receiver(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        Receiver.received.append(dict(urllib.parse.parse_qsl(body, keep_blank_values=True)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, *args):
        pass


def test_notification_verified_with_the_sdk(alipay):
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/notify" % server.server_port
    no, paid = pay(alipay, "6.66", notify_url=url, passback_params="order=1&x=%20")
    assert paid["code"] == "10000", paid
    for _ in range(200):
        if any(n.get("out_trade_no") == no for n in Receiver.received):
            break
        threading.Event().wait(0.05)
    server.shutdown()
    notice = next(n for n in Receiver.received if n.get("out_trade_no") == no)
    assert notice["trade_status"] == "TRADE_SUCCESS"
    assert notice["total_amount"] == "6.66"
    assert notice["passback_params"] == "order=1&x=%20"
    signature = notice.pop("sign")
    assert alipay.verify(dict(notice), signature)
    notice["total_amount"] = "66.60"
    assert not alipay.verify(dict(notice), signature)


def test_page_pay_link_opens_the_hosted_checkout(alipay):
    no = number("W")
    query = alipay.api_alipay_trade_page_pay(
        subject="Teapot", out_trade_no=no, total_amount="398.00",
        return_url="https://shop.example/return")
    page = urllib.request.urlopen(SANDBOX["gateway_url"] + "?" + query).read().decode()
    assert "398.00" in page and "Teahouse" in page
    assert alipay.api_alipay_trade_query(out_trade_no=no)["trade_status"] == "WAIT_BUYER_PAY"


def test_a_request_signed_with_another_key_is_refused(alipay, tmp_path):
    from Cryptodome.PublicKey import RSA
    other = tmp_path / "other.pem"
    other.write_bytes(RSA.generate(2048).export_key())
    result = client(private_key_path=str(other)).api_alipay_trade_query(out_trade_no="X")
    # Signed by the platform all the same: the SDK verified this error.
    assert (result["code"], result["sub_code"]) == ("40002", "isv.invalid-signature")
