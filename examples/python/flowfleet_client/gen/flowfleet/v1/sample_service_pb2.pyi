from buf.validate import validate_pb2 as _validate_pb2
from flowfleet.v1 import flow_pb2 as _flow_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
SAMPLE_STATE_CLOSED: SampleState
SAMPLE_STATE_ENRICHED: SampleState
SAMPLE_STATE_ENRICHMENT_FAILED: SampleState
SAMPLE_STATE_OPEN: SampleState
SAMPLE_STATE_PROCESSED: SampleState
SAMPLE_STATE_RELAYED: SampleState
SAMPLE_STATE_RELAY_FAILED: SampleState
SAMPLE_STATE_UNSPECIFIED: SampleState
SAMPLE_STATE_WRITE_FAILED: SampleState
SAMPLE_STATE_WRITTEN: SampleState

class EnrichSampleRequest(_message.Message):
    __slots__ = ["all", "id"]
    ALL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    all: bool
    id: str
    def __init__(self, id: _Optional[str] = ..., all: bool = ...) -> None: ...

class EnrichSampleResponse(_message.Message):
    __slots__ = ["queued", "sample"]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    queued: int
    sample: Sample
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ..., queued: _Optional[int] = ...) -> None: ...

class EventsLost(_message.Message):
    __slots__ = ["count", "first_time", "last_time"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_FIELD_NUMBER: _ClassVar[int]
    count: int
    first_time: _timestamp_pb2.Timestamp
    last_time: _timestamp_pb2.Timestamp
    def __init__(self, count: _Optional[int] = ..., first_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSampleContentRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetSampleContentResponse(_message.Message):
    __slots__ = ["chunk", "offset", "sample"]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    offset: int
    sample: Sample
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ..., offset: _Optional[int] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class GetSampleRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetSampleResponse(_message.Message):
    __slots__ = ["sample"]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ...) -> None: ...

class ListSampleFlowsRequest(_message.Message):
    __slots__ = ["id", "page_size", "page_token"]
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    page_size: int
    page_token: str
    def __init__(self, id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSampleFlowsResponse(_message.Message):
    __slots__ = ["flows", "next_page_token"]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[_flow_pb2.Flow]
    next_page_token: str
    def __init__(self, flows: _Optional[_Iterable[_Union[_flow_pb2.Flow, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListSamplesRequest(_message.Message):
    __slots__ = ["host", "page_size", "page_token", "since", "state", "until"]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    host: str
    page_size: int
    page_token: str
    since: _timestamp_pb2.Timestamp
    state: SampleState
    until: _timestamp_pb2.Timestamp
    def __init__(self, host: _Optional[str] = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[SampleState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSamplesResponse(_message.Message):
    __slots__ = ["next_page_token", "samples"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    def __init__(self, samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RelaySampleRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RelaySampleResponse(_message.Message):
    __slots__ = ["sample"]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ["bytes", "confidence", "create_time", "enrichment_error", "file_name", "flow_count", "flows_dropped", "flows_matched", "flows_unmatched", "host", "id", "process_time", "relay_error", "remote_id", "remote_unmatched", "revision", "state", "summary", "update_time", "verdict", "window_seconds", "window_start", "write_error"]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ENRICHMENT_ERROR_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    FLOWS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    FLOWS_MATCHED_FIELD_NUMBER: _ClassVar[int]
    FLOWS_UNMATCHED_FIELD_NUMBER: _ClassVar[int]
    FLOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_TIME_FIELD_NUMBER: _ClassVar[int]
    RELAY_ERROR_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ID_FIELD_NUMBER: _ClassVar[int]
    REMOTE_UNMATCHED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WRITE_ERROR_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    confidence: str
    create_time: _timestamp_pb2.Timestamp
    enrichment_error: str
    file_name: str
    flow_count: int
    flows_dropped: int
    flows_matched: int
    flows_unmatched: int
    host: str
    id: str
    process_time: _timestamp_pb2.Timestamp
    relay_error: str
    remote_id: str
    remote_unmatched: int
    revision: int
    state: SampleState
    summary: str
    update_time: _timestamp_pb2.Timestamp
    verdict: str
    window_seconds: int
    window_start: int
    write_error: str
    def __init__(self, id: _Optional[str] = ..., host: _Optional[str] = ..., window_start: _Optional[int] = ..., window_seconds: _Optional[int] = ..., revision: _Optional[int] = ..., flow_count: _Optional[int] = ..., bytes: _Optional[int] = ..., state: _Optional[_Union[SampleState, str]] = ..., file_name: _Optional[str] = ..., remote_id: _Optional[str] = ..., relay_error: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., write_error: _Optional[str] = ..., flows_dropped: _Optional[int] = ..., verdict: _Optional[str] = ..., confidence: _Optional[str] = ..., summary: _Optional[str] = ..., enrichment_error: _Optional[str] = ..., flows_matched: _Optional[int] = ..., flows_unmatched: _Optional[int] = ..., remote_unmatched: _Optional[int] = ..., process_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SampleEvent(_message.Message):
    __slots__ = ["previous_state", "sample", "time"]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    previous_state: SampleState
    sample: Sample
    time: _timestamp_pb2.Timestamp
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ..., previous_state: _Optional[_Union[SampleState, str]] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchSamplesRequest(_message.Message):
    __slots__ = ["host"]
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: str
    def __init__(self, host: _Optional[str] = ...) -> None: ...

class WatchSamplesResponse(_message.Message):
    __slots__ = ["event", "events_lost"]
    EVENTS_LOST_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: SampleEvent
    events_lost: EventsLost
    def __init__(self, event: _Optional[_Union[SampleEvent, _Mapping]] = ..., events_lost: _Optional[_Union[EventsLost, _Mapping]] = ...) -> None: ...

class SampleState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
