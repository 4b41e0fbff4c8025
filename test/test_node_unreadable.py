"""Images whose serialized bytes are garbled, published as raw CDR over real DDS into the live
node. What the RMW cannot deserialize it drops before any callback (rmw_fastrtps: no callback,
no error, no `message_lost` event), so the node counts those through the stamp-gap estimate,
`<stream>_missing_before_node`; garbled bytes that still deserialize reach the node's own checks
and are dropped with their reason. Either way the accounting holds (docs/node.md)."""

from __future__ import annotations

import struct
import time

from rclpy.serialization import serialize_message

from node_harness import Running, accounting

SECOND = 1_000_000_000
PERIOD = SECOND // 10


def _string_end(raw: bytes, at: int) -> int:
    """Offset after a CDR string (uint32 length with its NUL, then the bytes) at `at`."""
    return at + 4 + struct.unpack_from("<I", raw, at)[0]


def image_fields(raw: bytes) -> dict[str, int]:
    """Offsets of sensor_msgs/Image fields in little-endian XCDR1 bytes (4-byte encapsulation
    header; alignment counts from after it)."""
    assert raw[:2] == b"\x00\x01", "expected little-endian plain CDR"

    def aligned(offset: int) -> int:
        return 4 + -(-(offset - 4) // 4) * 4

    frame_id = 12  # after the header and the stamp's sec and nanosec
    encoding = aligned(_string_end(raw, frame_id)) + 8  # after height and width
    step = aligned(_string_end(raw, encoding) + 1)  # after is_bigendian
    return {"frame_id": frame_id, "encoding": encoding, "data": step + 4}


def garbled(msg, kind: str) -> bytes:
    raw = bytearray(serialize_message(msg))
    fields = image_fields(bytes(raw))
    assert struct.unpack_from("<I", raw, fields["data"])[0] == len(msg.data)  # layout check
    if kind == "cut short":
        return bytes(raw[: len(raw) // 2])
    if kind == "data length past the end":
        struct.pack_into("<I", raw, fields["data"], 0x7FFFFFFF)
    elif kind == "encoding length past the end":
        struct.pack_into("<I", raw, fields["encoding"], 0x7FFFFFF0)
    elif kind == "encoding not UTF-8":  # deserializes: rclpy decodes it with replacements
        length = struct.unpack_from("<I", raw, fields["encoding"])[0] - 1
        start = fields["encoding"] + 4
        raw[start:start + length] = b"\xff" * length
    else:
        raise ValueError(kind)
    return bytes(raw)


#: pair index -> (stream, garbling); the other stream of that pair is sent intact
GARBLED = {3: ("color", "encoding not UTF-8"), 7: ("color", "cut short"),
           10: ("color", "data length past the end"), 12: ("depth", "encoding length past the end")}
PAIRS = 14
UNREADABLE = {"color": 2, "depth": 1}


def test_unreadable_images_are_counted_as_missing_before_the_node(context, captures):
    running = Running(context, {"diagnostics_period": 0.2}, namespace="/unreadable")
    node, probe, capture = running.node, running.probe, captures[0]
    try:
        running.send_info(capture.info_msg(10 * SECOND))
        expected = {"color": 0, "depth": 0}
        for index in range(PAIRS):
            stamp = 10 * SECOND + (index + 1) * PERIOD
            messages = {"color": capture.color_msg(stamp), "depth": capture.depth_msg(stamp)}
            stream, kind = GARBLED.get(index, (None, None))
            for name, publisher in (("color", probe.color_pub), ("depth", probe.depth_pub)):
                unreadable = name == stream and kind != "encoding not UTF-8"
                publisher.publish(garbled(messages[name], kind) if name == stream
                                  else messages[name])
                expected[name] += 0 if unreadable else 1
            # one pair at a time, so that none is superseded and every reason is its own
            probe.wait_for(lambda _: all(node.stats.received[k] >= n for k, n in expected.items()),
                           20, f"the node to receive the readable images of pair {index}")
            running.wait_idle()
        deadline = time.monotonic() + 20
        while True:
            values = running.diagnostics()
            if int(values.get("dropped.unpaired", 0)) >= sum(UNREADABLE.values()):
                break
            assert time.monotonic() < deadline, values
        assert {k: int(values[f"{k}_received"]) for k in ("color", "depth")} == {
            "color": PAIRS - UNREADABLE["color"], "depth": PAIRS - UNREADABLE["depth"]}
        # the RMW dropped them before the node; the stamp gaps count every one
        assert {k: int(values[f"{k}_missing_before_node"]) for k in ("color", "depth")} == UNREADABLE
        # the readable garbage: its pair dropped by the node's own check, with the reason
        assert int(values.get("dropped.bad_encoding", 0)) == 2, values
        # each image whose partner the RMW dropped waited alone, then counted unpaired
        assert int(values["dropped.unpaired"]) == sum(UNREADABLE.values()), values
        assert int(values["published"]) == PAIRS - 1 - sum(UNREADABLE.values()), values
        received, accounted = accounting(values)
        assert received == accounted
        assert running.alive()
    finally:
        running.close()
