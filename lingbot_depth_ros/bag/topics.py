"""Find the colour, depth and camera info topics of a bag: from the node's parameters, explicit
names, or what the bag holds. A raw topic also matches its image_transport sub-topic."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from ..core.codec import COLOR_ENCODINGS, DEPTH_ENCODINGS
from .decode import CAMERA_INFO, COMPRESSED, IMAGE, IMAGE_TYPES, is_compressed_depth
from .reader import BagReader, MessageDecodeError, TopicError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputTopics:
    color: str
    color_type: str
    depth: str
    depth_type: str
    #: None when the bag has no camera info for the colour camera
    info: str | None

    def names(self) -> list[str]:
        return [t for t in (self.color, self.depth, self.info) if t]


def absolute(name: str) -> str:
    """Node-relative names resolve against the root namespace (a node run without -r __ns)."""
    return name if name.startswith("/") else "/" + name


def matching_topics(topics: Iterable[str], name: str) -> list[str]:
    """The recorded topics a node's topic parameter can mean: an absolute name itself; a
    relative one in the root namespace, else in any namespace (the presets name topics
    relative to the camera driver's namespace, which a bag does not record)."""
    topics = set(topics)
    if name.startswith("/") or absolute(name) in topics:
        return [absolute(name)] if absolute(name) in topics else []
    return sorted(t for t in topics if t.endswith(absolute(name)))


def _resolve(reader: BagReader, name: str, transport: str) -> str | None:
    for candidate in (name, f"{name}/{transport}"):
        found = matching_topics(reader.topics, candidate)
        if len(found) > 1:
            raise TopicError(f"{candidate} is in several namespaces of bag {reader.path} "
                             f"({', '.join(found)}); name the topic absolutely")
        if found:
            return found[0]
    return None


def _described(name: str) -> str:
    return absolute(name) if name.startswith("/") else f"{name} in any namespace"


def select_topics(reader: BagReader, color: str | None = None, depth: str | None = None,
                  info: str | None = None) -> InputTopics:
    """The input topics: given names (checked), else auto-detected; raises TopicError."""
    color_topic = _given(reader, color, "compressed", "colour") if color else _detect(reader, "colour")
    depth_topic = _given(reader, depth, "compressedDepth", "depth") if depth else _detect(reader, "depth")
    if color_topic == depth_topic:
        raise TopicError(f"colour and depth are the same topic {color_topic}")
    if info:
        found = matching_topics(reader.topics, info)
        # the info of the colour topic's namespace when the relative name is in several
        same_camera = [t for t in found if color_topic.startswith(t[:-len(absolute(info))] + "/")]
        info_topic = (same_camera or found or [None])[0]
        if info_topic is None:
            log.warning("camera info topic %s is not in the bag: no camera info or cloud output",
                        _described(info))
    else:
        info_topic = _detect_info(reader, color_topic)
    if info_topic and reader.topics[info_topic].msgtype != CAMERA_INFO:
        raise TopicError(f"topic {info_topic} is {reader.topics[info_topic].msgtype}, "
                         f"not {CAMERA_INFO}")
    return InputTopics(color=color_topic, color_type=reader.topics[color_topic].msgtype,
                       depth=depth_topic, depth_type=reader.topics[depth_topic].msgtype,
                       info=info_topic)


def _given(reader: BagReader, name: str, transport: str, what: str) -> str:
    topic = _resolve(reader, name, transport)
    if topic is None:
        images = [t for t, v in reader.topics.items() if v.msgtype in IMAGE_TYPES]
        raise TopicError(f"bag {reader.path} has no {what} topic {_described(name)} (nor "
                         f"{name}/{transport}); image topics in the bag: "
                         f"{', '.join(images) or 'none'}")
    msgtype = reader.topics[topic].msgtype
    if msgtype not in IMAGE_TYPES:
        raise TopicError(f"{what} topic {topic} has type {msgtype}; expected {IMAGE} or {COMPRESSED}")
    if reader.topics[topic].count == 0:
        raise TopicError(f"{what} topic {topic} has no messages in bag {reader.path}")
    return topic


def _kind(reader: BagReader, topic: str) -> str | None:
    """'colour', 'depth' or None for an image topic, from its first message."""
    bag_topic = reader.topics[topic]
    if bag_topic.count == 0 or not bag_topic.known:
        return None
    for conn, _, raw in reader.messages([topic]):
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except MessageDecodeError:
            return None
        if conn.msgtype == COMPRESSED:
            return "depth" if is_compressed_depth(msg) else "colour"
        if msg.encoding in DEPTH_ENCODINGS:
            return "depth"
        return "colour" if msg.encoding in COLOR_ENCODINGS else None
    return None


def _detect(reader: BagReader, what: str) -> str:
    images = [t for t, v in reader.topics.items() if v.msgtype in IMAGE_TYPES]
    found = [t for t in images if _kind(reader, t) == what]
    if not found:
        raise TopicError(f"bag {reader.path} has no {what} image topic with messages (image "
                         f"topics: {', '.join(images) or 'none'}); name it with --{_flag(what)}-topic")
    if len(found) > 1:
        found = _prefer(found, what)
    if len(found) > 1:
        raise TopicError(f"bag {reader.path} has several {what} topics ({', '.join(found)}); "
                         f"choose one with --{_flag(what)}-topic or --params")
    log.info("%s topic: %s", what, found[0])
    return found[0]


def _prefer(topics: list[str], what: str) -> list[str]:
    """Narrow down candidates: depth registered to colour, raw over compressed, no infrared."""
    rules = ([lambda t: "aligned_depth_to_color" in t or "registered" in t] if what == "depth"
             else [lambda t: "infra" not in t and "/ir/" not in t,
                   lambda t: "color" in t or "rgb" in t])
    rules.append(lambda t: not t.endswith(("/compressed", "/compressedDepth")))
    for rule in rules:
        kept = [t for t in topics if rule(t)]
        if kept:
            topics = kept
    return topics


def _flag(what: str) -> str:
    return "color" if what == "colour" else what


def _detect_info(reader: BagReader, color_topic: str) -> str | None:
    base = color_topic.removesuffix("/compressed")
    candidate = base.rsplit("/", 1)[0] + "/camera_info"
    if candidate in reader.topics:
        return candidate
    log.warning("no camera info next to %s (looked for %s): frames get no camera info or "
                "cloud output", color_topic, candidate)
    return None
