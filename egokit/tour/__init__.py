"""The tour: one self-contained HTML report built from the sections the commands register
(see `egokit.tour.report`)."""

from egokit.tour.report import Section, SectionBuilder, TourContext, register_section, run_tour

__all__ = ["Section", "SectionBuilder", "TourContext", "register_section", "run_tour"]
