// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Splitter
/// @notice Spreads the ether it receives over several recipients with low-level calls, so the
///         payouts are internal value transfers that only a trace shows.
/// @dev Call tree of split(r0..rn-1) with value v, n recipients (trace addresses):
///        []   sender -> Splitter, value v
///        [i]  Splitter -> r_i, value v / n
///      splitWithFailure(r0..rn-1) pays r0..r(n-2) as above, then tries the last share through
///      an external self-call that forwards it and reverts, and refunds that share instead:
///        [n-1]    Splitter -> Splitter.forwardThenRevert(r(n-1)), value v / n   (reverted)
///        [n-1,0]  Splitter -> r(n-1), value v / n   (succeeds itself, undone by its parent)
///        [n]      Splitter -> sender, value v / n   (the refund)
contract Splitter {
    event Split(address indexed sender, uint256 total, uint256 recipients);
    event HopFailed(address indexed recipient, uint256 value);

    function split(address payable[] calldata recipients) external payable {
        uint256 share = _share(recipients.length);
        for (uint256 i = 0; i < recipients.length; i++) {
            _send(recipients[i], share);
        }
        emit Split(msg.sender, msg.value, recipients.length);
    }

    function splitWithFailure(address payable[] calldata recipients) external payable {
        uint256 share = _share(recipients.length);
        uint256 last = recipients.length - 1;
        for (uint256 i = 0; i < last; i++) {
            _send(recipients[i], share);
        }
        try this.forwardThenRevert{value: share}(recipients[last]) {
            revert("Splitter: failing hop did not fail");
        } catch {
            emit HopFailed(recipients[last], share);
            _send(payable(msg.sender), share);
        }
        emit Split(msg.sender, msg.value, recipients.length);
    }

    /// @notice Forwards the value, then reverts, so the forwarding call is rolled back.
    function forwardThenRevert(address payable to) external payable {
        require(msg.sender == address(this), "Splitter: only self");
        _send(to, msg.value);
        revert("Splitter: simulated failure");
    }

    function _share(uint256 count) private view returns (uint256) {
        require(count > 0, "Splitter: no recipients");
        require(msg.value % count == 0, "Splitter: value not divisible");
        return msg.value / count;
    }

    function _send(address payable to, uint256 value) private {
        (bool ok, ) = to.call{value: value}("");
        require(ok, "Splitter: payout failed");
    }
}
