from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowFilter(_message.Message):
    __slots__ = ["category", "dst", "hosts", "name_source", "port", "protocol", "since", "src", "until"]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    NAME_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    category: str
    dst: str
    hosts: _containers.RepeatedScalarFieldContainer[str]
    name_source: str
    port: int
    protocol: str
    since: _timestamp_pb2.Timestamp
    src: str
    until: _timestamp_pb2.Timestamp
    def __init__(self, hosts: _Optional[_Iterable[str]] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., port: _Optional[int] = ..., protocol: _Optional[str] = ..., name_source: _Optional[str] = ..., category: _Optional[str] = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FlowGroup(_message.Message):
    __slots__ = ["bytes", "flows", "hosts", "key", "packets"]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    flows: int
    hosts: int
    key: str
    packets: int
    def __init__(self, key: _Optional[str] = ..., hosts: _Optional[int] = ..., flows: _Optional[int] = ..., packets: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class FlowRow(_message.Message):
    __slots__ = ["bytes", "category", "dst_addr", "dst_name", "dst_port", "flows", "host", "name_source", "packets", "protocol", "sample_id", "src_addr", "window_start"]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DST_ADDR_FIELD_NUMBER: _ClassVar[int]
    DST_NAME_FIELD_NUMBER: _ClassVar[int]
    DST_PORT_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    NAME_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    SRC_ADDR_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    category: str
    dst_addr: str
    dst_name: str
    dst_port: int
    flows: int
    host: str
    name_source: str
    packets: int
    protocol: str
    sample_id: str
    src_addr: str
    window_start: _timestamp_pb2.Timestamp
    def __init__(self, sample_id: _Optional[str] = ..., host: _Optional[str] = ..., window_start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., src_addr: _Optional[str] = ..., dst_addr: _Optional[str] = ..., dst_port: _Optional[int] = ..., dst_name: _Optional[str] = ..., name_source: _Optional[str] = ..., protocol: _Optional[str] = ..., category: _Optional[str] = ..., flows: _Optional[int] = ..., packets: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class SearchFlowsRequest(_message.Message):
    __slots__ = ["filter", "limit"]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    filter: FlowFilter
    limit: int
    def __init__(self, filter: _Optional[_Union[FlowFilter, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchFlowsResponse(_message.Message):
    __slots__ = ["limited", "rows"]
    LIMITED_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    limited: bool
    rows: _containers.RepeatedCompositeFieldContainer[FlowRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[FlowRow, _Mapping]]] = ..., limited: bool = ...) -> None: ...

class TopFlowsRequest(_message.Message):
    __slots__ = ["by", "filter", "limit"]
    BY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    by: str
    filter: FlowFilter
    limit: int
    def __init__(self, filter: _Optional[_Union[FlowFilter, _Mapping]] = ..., by: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class TopFlowsResponse(_message.Message):
    __slots__ = ["groups"]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[FlowGroup]
    def __init__(self, groups: _Optional[_Iterable[_Union[FlowGroup, _Mapping]]] = ...) -> None: ...
