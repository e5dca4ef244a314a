// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Mixer
/// @notice A stand-in for a fixed-denomination mixing pool, for monitoring demos only. It is
///         NOT a mixer: no zero-knowledge proofs, the operator decides every withdrawal and
///         commitments and nullifiers are plain public values.
/// @dev withdraw() pays out with a low-level call: an internal transfer at trace address [0].
contract Mixer {
    uint256 public immutable denomination;
    address public immutable operator;
    uint256 public deposits;

    mapping(bytes32 => bool) public commitments;
    mapping(bytes32 => bool) public nullifierSpent;

    event Deposit(bytes32 indexed commitment, uint256 leafIndex, uint256 timestamp);
    event Withdrawal(address to, bytes32 indexed nullifier);

    constructor(uint256 denomination_) {
        require(denomination_ > 0, "Mixer: zero denomination");
        denomination = denomination_;
        operator = msg.sender;
    }

    function deposit(bytes32 commitment) external payable {
        require(msg.value == denomination, "Mixer: wrong denomination");
        require(!commitments[commitment], "Mixer: commitment exists");
        commitments[commitment] = true;
        emit Deposit(commitment, deposits, block.timestamp);
        deposits += 1;
    }

    function withdraw(address payable to, bytes32 nullifier) external {
        require(msg.sender == operator, "Mixer: only operator");
        require(!nullifierSpent[nullifier], "Mixer: nullifier spent");
        nullifierSpent[nullifier] = true;
        (bool ok, ) = to.call{value: denomination}("");
        require(ok, "Mixer: payout failed");
        emit Withdrawal(to, nullifier);
    }
}
