"""AdminService's records: corrections of misreads (CAP-4) and security incidents (SEC-3)."""

from __future__ import annotations

from alpr.admin.v1 import records_pb2 as pb
from gateway.interceptors import Context, current_caller, peer_ip
from gateway.servicers.times import required_time
from gateway.services import Services
from node.store.capture_models import IncidentRecord


class RecordsAdmin:
    """Corrections and incidents, mixed into AdminService's servicer; each is audited."""

    services: Services

    def CorrectRead(  # noqa: N802 (gRPC method name)
        self, request: pb.CorrectReadRequest, context: Context
    ) -> pb.CorrectReadResponse:
        """Record what a misread should have been; the read stays as read."""
        caller = current_caller()
        correction = self.services.corrections.correct(
            request.read_id, request.plate, request.reason, user=caller.spiffe_id
        )
        self.services.audit.append(
            "read.corrected",
            actor=caller.spiffe_id,
            agency=caller.ori,
            peer_ip=peer_ip(context),
            details={"read_id": request.read_id, "plate": correction.plate},
        )
        return pb.CorrectReadResponse(correction_id=correction.id)

    def RecordIncident(  # noqa: N802 (gRPC method name)
        self, request: pb.RecordIncidentRequest, context: Context
    ) -> pb.RecordIncidentResponse:
        """Record a breach; 500 persons or more marks it for the Attorney General's form."""
        wanted = request.incident
        caller = current_caller()
        incident = self.services.incidents.record(
            wanted.description,
            discovered_at=required_time(wanted, "discover_time"),
            affected_records=wanted.affected_records,
            affected_persons=wanted.affected_persons,
            user=caller.spiffe_id,
        )
        self.services.audit.append(
            "incident.recorded",
            actor=caller.spiffe_id,
            agency=caller.ori,
            peer_ip=peer_ip(context),
            details={
                "incident_id": incident.id,
                "affected_persons": incident.affected_persons,
                "attorney_general_form": incident.attorney_general_form,
            },
        )
        return pb.RecordIncidentResponse(incident=_incident(incident))

    def ListIncidents(  # noqa: N802 (gRPC method name)
        self, request: pb.ListIncidentsRequest, context: Context
    ) -> pb.ListIncidentsResponse:
        """Every incident, most recently discovered first."""
        incidents = self.services.incidents.all()
        return pb.ListIncidentsResponse(incidents=[_incident(i) for i in incidents])


def _incident(record: IncidentRecord) -> pb.Incident:
    message = pb.Incident(
        incident_id=record.id,
        description=record.description,
        affected_records=record.affected_records,
        affected_persons=record.affected_persons,
        attorney_general_form=record.attorney_general_form,
        recorded_by=record.recorded_by,
    )
    message.discover_time.FromDatetime(record.discovered_at)
    return message
