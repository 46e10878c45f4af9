"""Crediting programmes, projects and verification: credits issued only against verified reductions.

The seed's J-VER flow (DOMAIN.md 0): a methodology is published on the programme's positive
list, a project applies and is registered with one of them, it monitors, an accredited
third party verifies, and credits are issued for what was verified. So:

- A **programme** is a scheme that issues credits (J-VER, the domestic credit scheme,
  CDM, JI), made one by giving it a **methodology list** (``set_programme``; the seed's J-VER
  positive list and a few CDM methodologies are in :data:`METHODOLOGIES`). Once a unit type
  is issued by a programme, no other scheme may issue it (``unit_not_allowed``): a compliance
  scheme such as JVETS no longer mints J-VER.
- A **project** (``register_project``) belongs to one programme and uses one methodology of
  its list (``unlisted_methodology`` otherwise); credits go to it as the block's ``project``,
  and its methodology and project type are the project's (:meth:`project`), so a scheme's
  exclusions (HFC-23, adipic N2O: EU Reg. 550/2011, DOMAIN.md 2) can test them.
- **Verifiers** are people accredited per programme (``accredit``). A project's
  representative reports a **monitoring period**'s reductions (``report_monitoring``); an
  accredited verifier verifies at most that much (``verify``), once.
- **Issuance** under a programme names the project and the monitoring period: at most the
  verified reductions (``exceeds_verified``) and once per period (``already_issued``).

Schemes without a methodology list keep the old rules, so order logs written before
programmes existed replay unchanged. Costs: a few dict lookups per act.
"""

from __future__ import annotations

import msgspec

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import (
    AlreadyIssued,
    DuplicateAccount,
    ExceedsVerified,
    NotAuthorised,
    OperationRefused,
    UnitNotAllowed,
    UnknownProject,
    UnlistedMethodology,
)
from carbonbook.registry._store import Store, _name
from carbonbook.registry.base import Entry, Project

_LISTS = msgspec.json.Encoder(order="sorted")

METHODOLOGIES: dict[str, dict[str, str]] = {
    "J-VER": {
        "E001": "fossil fuel to woody biomass boiler fuel",
        "E002": "fossil fuel to wood pellets",
        "E003": "wood pellet stoves",
        "E004": "biodiesel from waste cooking oil in vehicles",
        "E005": "sewage sludge solid fuel",
        "E006": "low-temperature waste heat",
        "R001": "forest thinning",
        "R002": "sustainable forest management",
        "R003": "afforestation",
    },
    "CDM": {  # methodology numbers recalled, not confirmed by DOMAIN.md
        "AM0001": "HFC-23",
        "AM0021": "adipic N2O",
        "ACM0002": "grid-connected renewable electricity",
    },
}
"""Methodology lists with each methodology's project type: J-VER's positive list from the seed
(DOMAIN.md 0) and the CDM methodologies of the two project types the EU banned from 2013
(HFC-23 destruction, N2O from adipic acid; DOMAIN.md 2) plus grid renewables."""


def _period(value: object, what: str = "monitoring period") -> int:
    if type(value) is not int or not 0 <= value <= 999_999:
        raise OperationRefused(f"{what} must be an integer in 0..999999, got {value!r}")
    return value


def _tonnes(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise OperationRefused(f"{what} must be a non-negative integer below 2**63, got {value!r}")
    return value


class ProjectRules(Store):
    """Programmes, accredited verifiers, projects, monitoring and the issuance bound (see the module)."""

    def set_programme(self, scheme: str, methodologies: dict[str, str]) -> int:
        with self.transaction():
            self.authorise(self._actor)
            self._scheme(scheme)
            if scheme in self._ledgers.programmes:
                raise OperationRefused(f"{scheme!r} has a methodology list already")
            if not isinstance(methodologies, dict) or not methodologies:
                raise OperationRefused(f"a programme needs a methodology list, got {methodologies!r:.80}")
            for code, kind in methodologies.items():
                _name(code, "methodology")
                _name(kind, "project type")
            txid = self._txid()
            listed = _LISTS.encode(dict(sorted(methodologies.items()))).decode()
            self._put(self._ledgers.programmes, scheme, listed)
            self._append(Entry(txid, "programme", "", detail=f"{scheme}: {', '.join(sorted(methodologies))}"))
            return txid

    def accredit(self, programme: str, verifier: str) -> int:
        with self.transaction():
            self.authorise(self._actor)
            self._programme(programme)
            _name(verifier, "verifier")
            if (programme, verifier) in self._ledgers.verifiers:
                raise DuplicateAccount(f"{verifier!r} is accredited for {programme!r} already")
            txid = self._txid()
            self._put(self._ledgers.verifiers, (programme, verifier), txid)
            self._append(Entry(txid, "accreditation", "", detail=f"{verifier} verifies for {programme}"))
            return txid

    def register_project(self, project: str, programme: str, methodology: str, account: str) -> int:
        with self.transaction():
            self.authorise(self._actor)
            _name(project, "project id")
            listed = self._programme(programme)
            self._acct(account)
            if project in self._ledgers.projects:
                raise OperationRefused(f"project {project!r} is registered already")
            if methodology not in listed:
                raise UnlistedMethodology(f"methodology {methodology!r} is not on {programme!r}'s list "
                                          f"({', '.join(listed)})")
            txid = self._txid()
            self._put(self._ledgers.projects, project, (programme, methodology, account))
            self._append(Entry(txid, "project", account, detail=f"{project}: {programme} {methodology} "
                                                                f"({listed[methodology]})"))
            return txid

    def report_monitoring(self, project: str, period: int, reductions: int) -> int:
        with self.transaction():
            row = self._project_row(project)
            self.authorise(self._actor, row[2])
            _period(period)
            _tonnes(reductions, "reductions")
            if (project, period) in self._ledgers.monitoring:
                raise OperationRefused(f"project {project!r} reported monitoring period {period} already")
            txid = self._txid()
            self._put(self._ledgers.monitoring, (project, period), (reductions, None, None, None))
            self._append(Entry(txid, "monitoring_report", row[2], qty=reductions, ref=period, detail=project))
            return txid

    def verify(self, project: str, period: int, verified: int) -> int:
        with self.transaction():
            row = self._project_row(project)
            actor = self._actor
            if actor is None or (row[0], actor) not in self._ledgers.verifiers:
                raise NotAuthorised(f"{actor!r} is not a verifier accredited for {row[0]!r}")
            report = self._ledgers.monitoring.get((project, period)) if type(period) is int else None
            if report is None:
                raise OperationRefused(f"project {project!r} reported no monitoring period {period!r}")
            if report[1] is not None:
                raise OperationRefused(f"monitoring period {period} of {project!r} is verified already")
            _tonnes(verified, "verified reductions")
            if verified > report[0]:
                raise ExceedsVerified(f"{verified} verified is more than the {report[0]} reported")
            txid = self._txid()
            self._put(self._ledgers.monitoring, (project, period), (report[0], verified, actor, None))
            self._append(Entry(txid, "verification", row[2], qty=verified, ref=period, detail=project))
            return txid

    def project(self, project: str) -> Project:
        """A registered project (:class:`~carbonbook.errors.UnknownProject` if there is none)."""
        programme, methodology, account = self._project_row(project)
        return Project(project, programme, methodology, self._programme(programme)[methodology], account)

    def monitoring(self, project: str, period: int) -> tuple[int, int | None, int | None]:
        """A monitoring period's (reported, verified or None, issued or None) reductions."""
        self._project_row(project)
        row = self._ledgers.monitoring.get((project, period))
        if row is None:
            raise OperationRefused(f"project {project!r} reported no monitoring period {period!r}")
        return row[0], row[1], row[3]

    def _programme(self, name: object) -> dict[str, str]:
        self._scheme(name)
        listed = self._ledgers.programmes.get(name)  # type: ignore[call-overload]
        if listed is None:
            raise OperationRefused(f"scheme {name!r} is not a crediting programme (it has no methodology list)")
        return msgspec.json.decode(listed, type=dict[str, str])

    def _project_row(self, project: object) -> tuple[str, str, str]:
        row = self._ledgers.projects.get(project) if type(project) is str else None
        if row is None:
            raise UnknownProject(f"project {project!r} is not registered")
        return row

    def _credit_issuance(self, scheme: str, unit: UnitType, qty: int, project: str | None,
                         monitoring: int | None) -> str | None:
        """Refuse an issuance a programme's rules forbid (called by ``_mint`` before it changes
        anything); record it against its monitoring period; the project's type (``None`` for
        schemes that are no programme, which pass untouched)."""
        if scheme not in self._ledgers.programmes:
            issuer = next((p for p in sorted(self._ledgers.programmes) if unit in self._schemes[p].allowances),
                          None)
            if issuer is not None:
                raise UnitNotAllowed(f"{unit} are credits of programme {issuer!r}: they are issued there, "
                                     f"against a verified monitoring report, not by scheme {scheme!r}")
            if monitoring is not None:
                raise OperationRefused(f"scheme {scheme!r} is not a crediting programme: no monitoring periods")
            return None
        row = self._project_row(project)
        if row[0] != scheme:
            raise UnknownProject(f"project {project!r} is registered under {row[0]!r}, not {scheme!r}")
        if monitoring is None:
            raise OperationRefused(f"credits of {scheme!r} are issued for a verified monitoring period: "
                                   "name it")
        report = self._ledgers.monitoring.get((project, _period(monitoring)))  # type: ignore[arg-type]
        if report is None or report[1] is None:
            raise ExceedsVerified(f"monitoring period {monitoring} of {project!r} is not verified: "
                                  "nothing to issue")
        if report[3] is not None:
            raise AlreadyIssued(f"{report[3]} credits were issued for monitoring period {monitoring} of "
                                f"{project!r} already")
        if qty > report[1]:
            raise ExceedsVerified(f"{qty} asked, but {report[1]} verified for monitoring period {monitoring} "
                                  f"of {project!r}")
        self._put(self._ledgers.monitoring, (project, monitoring), (report[0], report[1], report[2], qty))
        return self._programme(scheme)[row[1]]
