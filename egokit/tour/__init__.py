"""The tour: one self-contained HTML report built from the sections the commands register
(see `egokit.tour.report`)."""

from egokit.tour.report import Headline, Section, SectionBuilder, TourContext, register_section, run_tour

__all__ = ["Headline", "Section", "SectionBuilder", "TourContext", "register_section", "run_tour"]
