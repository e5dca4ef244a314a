"""A driver that scripts realistic fund movements on an anvil devnet and reports the facts.

Every method that moves value waits for the receipt and returns :class:`SentTransfer` values:
what a correct connector must later extract from the chain (native values, ERC-20 logs and
internal transfers with their trace addresses).

Senders: wallets made with :meth:`DevnetDriver.new_wallet` have a private key derived from
their label (``keccak256(label)``) and sign locally, exactly like a mainnet wallet, so a scenario
gives the same addresses on every run. Any other address (a "seized" wallet given by address
only, an anvil dev account) is sent from with ``anvil_impersonateAccount`` and
``eth_sendTransaction``. Both kinds need ether for gas: use :meth:`DevnetDriver.fund`.

The driver expects anvil's default automine; if automine is off it mines one block after each
transaction so that the receipt arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxParams, TxReceipt

from monitor.demo.build_contracts import load_artifacts
from monitor.errors import ServiceError
from monitor.records import log_transfer_id, native_transfer_id, trace_transfer_id

SentTransferKind = Literal["native", "erc20", "internal"]
TraceAddress = tuple[int, ...]

NATIVE_SYMBOL = "ETH"
NATIVE_DECIMALS = 18
ERC20_TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
PRIORITY_FEE_WEI = 10**9
RECEIPT_TIMEOUT_SECONDS = 30.0
GAS_MARGIN = 20_000


class TransactionReverted(ServiceError):
    """A devnet transaction reverted (at gas estimation or in its receipt)."""


@dataclass(frozen=True)
class SentTransfer:
    """One value movement the driver caused: the fact a connector must find on chain."""

    kind: SentTransferKind
    tx_hash: str
    block_number: int
    block_hash: str
    from_address: str
    to_address: str
    amount: int
    token: str | None
    decimals: int
    symbol: str
    log_index: int | None
    trace_address: TraceAddress | None

    def record_id(self, chain: str) -> str:
        """Return the id the normalized ``Transfer`` record of this fact must carry."""
        if self.log_index is not None:
            return log_transfer_id(chain, self.tx_hash, self.log_index)
        if self.trace_address is not None:
            return trace_transfer_id(chain, self.tx_hash, self.trace_address)
        return native_transfer_id(chain, self.tx_hash)


@dataclass(frozen=True)
class FailedSplit:
    """Outcome of ``splitWithFailure``: the value that moved and the calls that were undone."""

    tx_hash: str
    transfers: list[SentTransfer]
    reverted_trace_addresses: tuple[TraceAddress, ...]


def _lower(address: str) -> str:
    return address.lower()


def _hex(value: bytes | HexBytes) -> str:
    return HexBytes(value).to_0x_hex()


class DevnetDriver:
    """Sends transactions to an anvil node and reports the transfers they made."""

    def __init__(self, rpc_url: str) -> None:
        self.rpc_url = rpc_url
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        self._artifacts = load_artifacts()
        self._accounts: dict[str, LocalAccount] = {}
        self._impersonated: set[str] = set()
        self._tokens: dict[str, tuple[str, int]] = {}
        self._chain_id: int | None = None

    # -- node ---------------------------------------------------------------------------

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Call a raw JSON-RPC method and return its result; an error object raises."""
        response = self.w3.provider.make_request(cast(Any, method), list(params))
        if "error" in response:
            error = response["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ServiceError(f"{method} failed: {message}", rpc_url=self.rpc_url)
        return response.get("result")

    @property
    def chain_id(self) -> int:
        """Chain id of the devnet (31337 for a default anvil)."""
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        return self._chain_id

    def head(self) -> int:
        """Return the number of the latest block."""
        return self.w3.eth.block_number

    def mine(self, n: int = 1) -> None:
        """Mine ``n`` blocks (empty unless transactions are pending)."""
        self.rpc("anvil_mine", [hex(n)])

    def fund(self, address: str, wei: int) -> None:
        """Set the ether balance of ``address`` with ``anvil_setBalance`` (not a transfer)."""
        self.rpc("anvil_setBalance", [to_checksum_address(address), hex(wei)])

    def balance(self, address: str) -> int:
        """Ether balance of ``address`` in wei at the latest block."""
        return self.w3.eth.get_balance(to_checksum_address(address))

    def token_balance(self, token: str, address: str) -> int:
        """Token balance of ``address`` in the token's base units."""
        balance = (
            self._contract("Token", token).functions.balanceOf(to_checksum_address(address)).call()
        )
        return int(balance)

    # -- wallets ------------------------------------------------------------------------

    def new_wallet(self, label: str) -> str:
        """Return the address whose private key is ``keccak256(label)``: same label, same wallet."""
        key = keccak(text=label)
        if not 0 < int.from_bytes(key, "big") < SECP256K1_ORDER:
            raise ValueError(f"label {label!r} gives no valid secp256k1 key: pick another")
        account: LocalAccount = Account.from_key(key)
        address = _lower(account.address)
        self._accounts[address] = account
        return address

    # -- sending ------------------------------------------------------------------------

    def transact(
        self,
        frm: str,
        to: str | None,
        *,
        value: int = 0,
        data: str = "0x",
        gas: int | None = None,
    ) -> TxReceipt:
        """Send one transaction, wait for its receipt and raise ``TransactionReverted`` on failure.

        ``to=None`` deploys ``data`` as init code. Without ``gas`` the node estimates it, and a
        transaction that would revert raises before it is sent.
        """
        sender = _lower(frm)
        tx: dict[str, Any] = {
            "from": to_checksum_address(sender),
            "value": value,
            "data": data,
            "chainId": self.chain_id,
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        context = {"frm": sender, "to": to and _lower(to)}
        if gas is None:
            try:
                gas = self.w3.eth.estimate_gas(cast(TxParams, tx))
            except (ContractLogicError, Web3RPCError) as exc:
                raise TransactionReverted(f"transaction would revert: {exc}", **context) from exc
            if data != "0x":
                # The estimate is the least gas that succeeds; with a try/catch inside, that
                # can mean an inner call failing by out-of-gas instead of its scripted revert.
                gas = gas * 3 // 2 + GAS_MARGIN
        tx["gas"] = gas
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        tx["maxPriorityFeePerGas"] = PRIORITY_FEE_WEI
        tx["maxFeePerGas"] = 2 * base_fee + PRIORITY_FEE_WEI
        tx["type"] = 2
        account = self._accounts.get(sender)
        if account is not None:
            tx["nonce"] = self.w3.eth.get_transaction_count(account.address, "pending")
            signed = account.sign_transaction(tx)
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        else:
            if sender not in self._impersonated:
                self.rpc("anvil_impersonateAccount", [to_checksum_address(sender)])
                self._impersonated.add(sender)
            tx_hash = self.w3.eth.send_transaction(cast(TxParams, tx))
        if not self.rpc("anvil_getAutomine"):
            self.mine()
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_SECONDS)
        if receipt["status"] != 1:
            raise TransactionReverted(
                "transaction reverted",
                tx_hash=_hex(tx_hash),
                block=receipt["blockNumber"],
                **context,
            )
        return receipt

    def sign_native(self, frm: str, to: str, wei: int, nonce: int) -> str:
        """A signed raw ether transfer from a wallet of :meth:`new_wallet` (not sent).

        Reorg tests put the very same transaction back into the chain with ``anvil_reorg``.
        """
        account = self._accounts.get(_lower(frm))
        if account is None:
            raise ValueError(f"{frm} is not a wallet of this driver: use new_wallet()")
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        tx: dict[str, Any] = {
            "to": to_checksum_address(to), "value": wei, "gas": 21_000, "nonce": nonce,
            "chainId": self.chain_id, "maxFeePerGas": 4 * base_fee + PRIORITY_FEE_WEI,
            "maxPriorityFeePerGas": PRIORITY_FEE_WEI, "type": 2}
        return _hex(account.sign_transaction(tx).raw_transaction)

    def send_native(self, frm: str, to: str, wei: int) -> SentTransfer:
        """Send ``wei`` of ether from ``frm`` to ``to`` as a plain transaction."""
        receipt = self.transact(frm, to, value=wei)
        return self._native_fact(receipt, frm, to, wei)

    def tx_value_transfer(self, tx_hash: str) -> SentTransfer | None:
        """Return the native transfer carried by a mined transaction's own value, if any."""
        tx = self.w3.eth.get_transaction(cast(Any, tx_hash))
        if tx["value"] == 0 or tx.get("to") is None:
            return None
        receipt = self.w3.eth.get_transaction_receipt(cast(Any, tx_hash))
        return self._native_fact(receipt, tx["from"], cast(str, tx["to"]), tx["value"])

    # -- contracts ----------------------------------------------------------------------

    def deploy(self, deployer: str, name: str, *args: Any) -> str:
        """Deploy the demo contract ``name`` (Token, Splitter, Mixer); return its address."""
        artifact = self._artifacts[name]
        ctor = next((e for e in artifact["abi"] if e["type"] == "constructor"), None)
        types = [i["type"] for i in ctor["inputs"]] if ctor else []
        init_code = artifact["bytecode"] + abi_encode(types, list(args)).hex()
        receipt = self.transact(deployer, None, data=init_code)
        address = receipt["contractAddress"]
        if address is None:
            raise ServiceError(f"deploying {name} returned no contract address")
        return _lower(address)

    def deploy_token(
        self,
        deployer: str,
        symbol: str = "tUSD",
        decimals: int = 6,
        supply: int | None = None,
        name: str = "Tether-like USD",
    ) -> str:
        """Deploy a demo ERC-20; the supply (default 10^9 whole tokens) goes to the deployer."""
        if supply is None:
            supply = 10**9 * 10**decimals
        address = self.deploy(deployer, "Token", name, symbol, decimals, supply)
        self._tokens[address] = (symbol, decimals)
        return address

    def send_token(self, token: str, frm: str, to: str, amount: int) -> SentTransfer:
        """Call ``transfer(to, amount)`` on ``token`` from ``frm``; return the logged transfer."""
        data = self._contract("Token", token).encode_abi(
            "transfer", args=[to_checksum_address(to), amount]
        )
        receipt = self.transact(frm, token, data=data)
        symbol, decimals = self._token_info(token)
        for log in receipt["logs"]:
            topics = [_hex(t) for t in log["topics"]]
            if (
                _lower(log["address"]) == _lower(token)
                and len(topics) == 3
                and topics[0] == ERC20_TRANSFER_TOPIC
            ):
                return SentTransfer(
                    kind="erc20",
                    tx_hash=_hex(receipt["transactionHash"]),
                    block_number=receipt["blockNumber"],
                    block_hash=_hex(receipt["blockHash"]),
                    from_address="0x" + topics[1][-40:],
                    to_address="0x" + topics[2][-40:],
                    amount=int.from_bytes(HexBytes(log["data"]), "big"),
                    token=_lower(token),
                    decimals=decimals,
                    symbol=symbol,
                    log_index=log["logIndex"],
                    trace_address=None,
                )
        raise ServiceError("token transfer emitted no Transfer log", token=token)

    def deploy_splitter(self, deployer: str) -> str:
        """Deploy a ``Splitter``; return its address."""
        return self.deploy(deployer, "Splitter")

    def split(
        self, splitter: str, frm: str, recipients: Sequence[str], wei: int
    ) -> list[SentTransfer]:
        """Call ``split`` with ``wei``; return the payouts, internal transfers at ``[i]``.

        The transaction's own value (``frm`` -> splitter) is a native transfer: get it with
        :meth:`tx_value_transfer`.
        """
        receipt = self._call_splitter("split", splitter, frm, recipients, wei)
        share = wei // len(recipients)
        return [
            self._internal_fact(receipt, splitter, r, share, (i,)) for i, r in enumerate(recipients)
        ]

    def split_with_failure(
        self, splitter: str, frm: str, recipients: Sequence[str], wei: int
    ) -> FailedSplit:
        """Call ``splitWithFailure``: the last share's hop reverts and is refunded to ``frm``.

        Transfers that moved: ``[i]`` for all recipients but the last, and the refund at
        ``[n]``. Undone: the self-call at ``[n-1]`` and its forward to the last recipient at
        ``[n-1, 0]``.
        """
        receipt = self._call_splitter("splitWithFailure", splitter, frm, recipients, wei)
        n = len(recipients)
        share = wei // n
        transfers = [
            self._internal_fact(receipt, splitter, r, share, (i,))
            for i, r in enumerate(recipients[:-1])
        ]
        transfers.append(self._internal_fact(receipt, splitter, frm, share, (n,)))
        return FailedSplit(
            tx_hash=_hex(receipt["transactionHash"]),
            transfers=transfers,
            reverted_trace_addresses=((n - 1,), (n - 1, 0)),
        )

    def deploy_mixer(self, deployer: str, denomination: int = 10**18) -> str:
        """Deploy a ``Mixer`` stand-in with a fixed ``denomination``; ``deployer`` is operator."""
        return self.deploy(deployer, "Mixer", denomination)

    def mixer_deposit(self, mixer: str, frm: str, commitment: bytes | None = None) -> SentTransfer:
        """Deposit one denomination from ``frm``; return the native transfer into the pool.

        Without ``commitment`` a fresh one is derived from the sender and its nonce.
        """
        contract = self._contract("Mixer", mixer)
        denomination = int(contract.functions.denomination().call())
        if commitment is None:
            nonce = self.w3.eth.get_transaction_count(to_checksum_address(frm))
            commitment = keccak(text=f"commitment:{_lower(frm)}:{nonce}")
        data = contract.encode_abi("deposit", args=[commitment])
        receipt = self.transact(frm, mixer, value=denomination, data=data)
        return self._native_fact(receipt, frm, mixer, denomination)

    def mixer_withdraw(self, mixer: str, to: str, nullifier: bytes | None = None) -> SentTransfer:
        """Have the operator pay one denomination to ``to``: an internal transfer at ``[0]``.

        Without ``nullifier`` a fresh one is derived from the recipient and the head.
        """
        contract = self._contract("Mixer", mixer)
        denomination = int(contract.functions.denomination().call())
        operator = _lower(contract.functions.operator().call())
        if nullifier is None:
            nullifier = keccak(text=f"nullifier:{_lower(to)}:{self.head()}")
        data = contract.encode_abi("withdraw", args=[to_checksum_address(to), nullifier])
        receipt = self.transact(operator, mixer, data=data)
        return self._internal_fact(receipt, mixer, to, denomination, (0,))

    # -- helpers ------------------------------------------------------------------------

    def _contract(self, name: str, address: str) -> type[Contract] | Contract:
        return self.w3.eth.contract(
            address=to_checksum_address(address), abi=self._artifacts[name]["abi"]
        )

    def _token_info(self, token: str) -> tuple[str, int]:
        key = _lower(token)
        if key not in self._tokens:
            contract = self._contract("Token", key)
            symbol = str(contract.functions.symbol().call())
            decimals = int(contract.functions.decimals().call())
            self._tokens[key] = (symbol, decimals)
        return self._tokens[key]

    def _call_splitter(
        self, function: str, splitter: str, frm: str, recipients: Sequence[str], wei: int
    ) -> TxReceipt:
        if not recipients or wei % len(recipients):
            raise ValueError("need at least one recipient and a value divisible by their count")
        data = self._contract("Splitter", splitter).encode_abi(
            function, args=[[to_checksum_address(r) for r in recipients]]
        )
        return self.transact(frm, splitter, value=wei, data=data)

    @staticmethod
    def _native_fact(receipt: TxReceipt, frm: str, to: str, wei: int) -> SentTransfer:
        return SentTransfer(
            kind="native",
            tx_hash=_hex(receipt["transactionHash"]),
            block_number=receipt["blockNumber"],
            block_hash=_hex(receipt["blockHash"]),
            from_address=_lower(frm),
            to_address=_lower(to),
            amount=wei,
            token=None,
            decimals=NATIVE_DECIMALS,
            symbol=NATIVE_SYMBOL,
            log_index=None,
            trace_address=None,
        )

    @staticmethod
    def _internal_fact(
        receipt: TxReceipt, frm: str, to: str, wei: int, trace_address: TraceAddress
    ) -> SentTransfer:
        return SentTransfer(
            kind="internal",
            tx_hash=_hex(receipt["transactionHash"]),
            block_number=receipt["blockNumber"],
            block_hash=_hex(receipt["blockHash"]),
            from_address=_lower(frm),
            to_address=_lower(to),
            amount=wei,
            token=None,
            decimals=NATIVE_DECIMALS,
            symbol=NATIVE_SYMBOL,
            log_index=None,
            trace_address=trace_address,
        )
