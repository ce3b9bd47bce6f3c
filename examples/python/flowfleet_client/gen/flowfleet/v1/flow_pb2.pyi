from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
NAME_SOURCE_CACHE: NameSource
NAME_SOURCE_ORIGINAL: NameSource
NAME_SOURCE_PASSIVE: NameSource
NAME_SOURCE_SESSION: NameSource
NAME_SOURCE_UNSPECIFIED: NameSource
PROTOCOL_ICMP: Protocol
PROTOCOL_OTHER: Protocol
PROTOCOL_TCP: Protocol
PROTOCOL_UDP: Protocol
PROTOCOL_UNSPECIFIED: Protocol

class Destination(_message.Message):
    __slots__ = ["description", "name", "relevance", "tags", "title"]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    description: str
    name: str
    relevance: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    title: str
    def __init__(self, name: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., relevance: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ["category", "destination", "dst_addr", "dst_bytes", "dst_name", "dst_pkts", "dst_port", "event_id", "first_seen", "flow_id", "last_seen", "name_source", "protocol", "src_addr", "src_bytes", "src_pkts", "src_port", "window_start"]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    DST_ADDR_FIELD_NUMBER: _ClassVar[int]
    DST_BYTES_FIELD_NUMBER: _ClassVar[int]
    DST_NAME_FIELD_NUMBER: _ClassVar[int]
    DST_PKTS_FIELD_NUMBER: _ClassVar[int]
    DST_PORT_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    NAME_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SRC_ADDR_FIELD_NUMBER: _ClassVar[int]
    SRC_BYTES_FIELD_NUMBER: _ClassVar[int]
    SRC_PKTS_FIELD_NUMBER: _ClassVar[int]
    SRC_PORT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    category: str
    destination: Destination
    dst_addr: str
    dst_bytes: int
    dst_name: str
    dst_pkts: int
    dst_port: str
    event_id: str
    first_seen: float
    flow_id: str
    last_seen: float
    name_source: NameSource
    protocol: Protocol
    src_addr: str
    src_bytes: int
    src_pkts: int
    src_port: str
    window_start: int
    def __init__(self, src_addr: _Optional[str] = ..., src_port: _Optional[str] = ..., dst_addr: _Optional[str] = ..., dst_port: _Optional[str] = ..., dst_name: _Optional[str] = ..., name_source: _Optional[_Union[NameSource, str]] = ..., protocol: _Optional[_Union[Protocol, str]] = ..., src_pkts: _Optional[int] = ..., src_bytes: _Optional[int] = ..., dst_pkts: _Optional[int] = ..., dst_bytes: _Optional[int] = ..., first_seen: _Optional[float] = ..., last_seen: _Optional[float] = ..., window_start: _Optional[int] = ..., category: _Optional[str] = ..., flow_id: _Optional[str] = ..., event_id: _Optional[str] = ..., destination: _Optional[_Union[Destination, _Mapping]] = ...) -> None: ...

class NameSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
