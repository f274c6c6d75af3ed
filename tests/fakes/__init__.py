"""Local fakes of the paid provider APIs (OpenAI, Azure OpenAI, Anthropic, Gemini, Serper, Tavily,
Brave, Unsplash) speaking their real wire formats on 127.0.0.1; see ``providers.FakeProviders``."""

from tests.fakes.providers import FAULTS, FakeProviders, RecordedRequest

__all__ = ["FAULTS", "FakeProviders", "RecordedRequest"]
