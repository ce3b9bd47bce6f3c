from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Host(_message.Message):
    __slots__ = ["connected", "drops_reported", "flows_dropped", "flows_received", "last_contact", "name", "open_streams", "software_version", "stream_id"]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    DROPS_REPORTED_FIELD_NUMBER: _ClassVar[int]
    FLOWS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    FLOWS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LAST_CONTACT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OPEN_STREAMS_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    connected: bool
    drops_reported: int
    flows_dropped: int
    flows_received: int
    last_contact: _timestamp_pb2.Timestamp
    name: str
    open_streams: int
    software_version: str
    stream_id: str
    def __init__(self, name: _Optional[str] = ..., last_contact: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., connected: bool = ..., software_version: _Optional[str] = ..., flows_received: _Optional[int] = ..., drops_reported: _Optional[int] = ..., stream_id: _Optional[str] = ..., flows_dropped: _Optional[int] = ..., open_streams: _Optional[int] = ...) -> None: ...

class ListHostsRequest(_message.Message):
    __slots__ = ["connected_only", "page_size", "page_token"]
    CONNECTED_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connected_only: bool
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., connected_only: bool = ...) -> None: ...

class ListHostsResponse(_message.Message):
    __slots__ = ["hosts", "next_page_token"]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    next_page_token: str
    def __init__(self, hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
