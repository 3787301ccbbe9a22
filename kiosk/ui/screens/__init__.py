"""The kiosk's screens; each is a `Screen` subclass named by its `name`."""

from kiosk.ui.screens.inbox import InboxScreen
from kiosk.ui.screens.picture import PictureScreen
from kiosk.ui.screens.queue import QueueScreen
from kiosk.ui.screens.receipt import ReceiptScreen
from kiosk.ui.screens.report import ReportScreen
from kiosk.ui.screens.save import SaveScreen
from kiosk.ui.screens.scan import ScanScreen
from kiosk.ui.screens.settings import PinScreen, SettingsScreen
from kiosk.ui.screens.thread import ThreadScreen

SCREENS = (
    ScanScreen,
    ReportScreen,
    PictureScreen,
    SaveScreen,
    ReceiptScreen,
    QueueScreen,
    InboxScreen,
    ThreadScreen,
    PinScreen,
    SettingsScreen,
)

__all__ = ["SCREENS"]
