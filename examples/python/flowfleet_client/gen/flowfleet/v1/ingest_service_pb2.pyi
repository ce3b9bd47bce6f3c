from buf.validate import validate_pb2 as _validate_pb2
from flowfleet.v1 import flow_pb2 as _flow_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
NOTICE_CODE_DRAINING: NoticeCode
NOTICE_CODE_DUPLICATE_BATCH: NoticeCode
NOTICE_CODE_LATE_FLOWS: NoticeCode
NOTICE_CODE_UNSPECIFIED: NoticeCode

class Ack(_message.Message):
    __slots__ = ["seq"]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class DropCounters(_message.Message):
    __slots__ = ["kernel_packets", "sensor_flows", "sensor_packets"]
    KERNEL_PACKETS_FIELD_NUMBER: _ClassVar[int]
    SENSOR_FLOWS_FIELD_NUMBER: _ClassVar[int]
    SENSOR_PACKETS_FIELD_NUMBER: _ClassVar[int]
    kernel_packets: int
    sensor_flows: int
    sensor_packets: int
    def __init__(self, kernel_packets: _Optional[int] = ..., sensor_packets: _Optional[int] = ..., sensor_flows: _Optional[int] = ...) -> None: ...

class FlowBatch(_message.Message):
    __slots__ = ["drops", "flows", "seq"]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    drops: DropCounters
    flows: _containers.RepeatedCompositeFieldContainer[_flow_pb2.Flow]
    seq: int
    def __init__(self, seq: _Optional[int] = ..., flows: _Optional[_Iterable[_Union[_flow_pb2.Flow, _Mapping]]] = ..., drops: _Optional[_Union[DropCounters, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ["drops_total", "software_version", "stream_id", "window_seconds"]
    DROPS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    drops_total: DropCounters
    software_version: str
    stream_id: str
    window_seconds: int
    def __init__(self, stream_id: _Optional[str] = ..., software_version: _Optional[str] = ..., window_seconds: _Optional[int] = ..., drops_total: _Optional[_Union[DropCounters, _Mapping]] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ["batch", "hello", "window_end"]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    batch: FlowBatch
    hello: Hello
    window_end: WindowEnd
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., batch: _Optional[_Union[FlowBatch, _Mapping]] = ..., window_end: _Optional[_Union[WindowEnd, _Mapping]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ["ack", "notice", "welcome"]
    ACK_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ack: Ack
    notice: Notice
    welcome: Welcome
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., notice: _Optional[_Union[Notice, _Mapping]] = ...) -> None: ...

class Notice(_message.Message):
    __slots__ = ["code", "message", "seq", "window_start"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    code: NoticeCode
    message: str
    seq: int
    window_start: int
    def __init__(self, code: _Optional[_Union[NoticeCode, str]] = ..., seq: _Optional[int] = ..., window_start: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ["collector_version", "host", "window_seconds"]
    COLLECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    collector_version: str
    host: str
    window_seconds: int
    def __init__(self, host: _Optional[str] = ..., collector_version: _Optional[str] = ..., window_seconds: _Optional[int] = ...) -> None: ...

class WindowEnd(_message.Message):
    __slots__ = ["first_frame_time", "window_seconds", "window_start"]
    FIRST_FRAME_TIME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    first_frame_time: float
    window_seconds: int
    window_start: int
    def __init__(self, window_start: _Optional[int] = ..., window_seconds: _Optional[int] = ..., first_frame_time: _Optional[float] = ...) -> None: ...

class NoticeCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
