//! Where the sandbox's users spend: merchants, employers and utilities per
//! country, and the exchange rates between the sandbox's currencies.

use super::catalog::{CHF, EUR, GBP, PLN, USD};
use crate::types::{CountryCode, CurrencyCode};

/// Units of `currency` per 1,000 EUR (fixed: the sandbox has no markets).
pub fn per_mille_of_eur(currency: CurrencyCode) -> i64 {
    match currency.as_str() {
        "GBP" => 860,
        "USD" => 1_080,
        "PLN" => 4_300,
        "CHF" => 940,
        _ => 1_000,
    }
}

/// `eur_cents` (an amount the generator thinks in) in `currency`'s minor
/// units.
pub fn from_eur(eur_cents: i64, currency: CurrencyCode) -> i64 {
    eur_cents.saturating_mul(per_mille_of_eur(currency)) / 1_000
}

/// `minor` of `from` converted into `to`.
pub fn convert(minor: i64, from: CurrencyCode, to: CurrencyCode) -> i64 {
    minor.saturating_mul(per_mille_of_eur(to)) / per_mille_of_eur(from)
}

/// A country's names.
#[derive(Debug)]
pub struct Market {
    pub country: CountryCode,
    pub currency: CurrencyCode,
    pub cities: &'static [&'static str],
    pub groceries: &'static [&'static str],
    pub restaurants: &'static [&'static str],
    pub cafes: &'static [&'static str],
    pub transport: &'static [&'static str],
    pub shops: &'static [&'static str],
    pub pharmacies: &'static [&'static str],
    pub fuel: &'static [&'static str],
    pub hotels: &'static [&'static str],
    pub online: &'static [&'static str],
    pub employer: &'static str,
    pub landlord: &'static str,
    pub client: &'static str,
    /// Electricity, internet, water, home insurance.
    pub utilities: [&'static str; 4],
}

pub const MARKETS: &[Market] = &[
    Market {
        country: CountryCode::from_static("GB"),
        currency: GBP,
        cities: &["LONDON", "MANCHESTER", "BRISTOL"],
        groceries: &["TESCO STORES", "SAINSBURYS", "WAITROSE", "LIDL GB"],
        restaurants: &["DISHOOM", "NANDOS", "WAGAMAMA", "PIZZA EXPRESS"],
        cafes: &["PRET A MANGER", "COSTA COFFEE", "CAFFE NERO"],
        transport: &["TFL TRAVEL CH", "TRAINLINE", "UBER TRIP"],
        shops: &["BOOTS", "MARKS&SPENCER", "JOHN LEWIS", "ARGOS"],
        pharmacies: &["BOOTS PHARMACY", "SUPERDRUG"],
        fuel: &["SHELL", "BP"],
        hotels: &["PREMIER INN", "THE HOXTON"],
        online: &["AMAZON.CO.UK", "ASOS.COM", "DELIVEROO"],
        employer: "Thames Analytics Ltd",
        landlord: "Harbour Lettings Ltd",
        client: "Brightside Media Ltd",
        utilities: ["Octopus Energy", "BT Broadband", "Thames Water", "Aviva Home"],
    },
    Market {
        country: CountryCode::from_static("DE"),
        currency: EUR,
        cities: &["BERLIN", "KOELN", "MUENCHEN"],
        groceries: &["REWE", "EDEKA", "ALDI SUED", "DM-DROGERIE"],
        restaurants: &["VAPIANO", "BLOCK HOUSE", "L'OSTERIA"],
        cafes: &["BACKWERK", "TCHIBO", "BALZAC COFFEE"],
        transport: &["DB VERTRIEB", "BVG", "FREE NOW"],
        shops: &["MEDIAMARKT", "SATURN", "H&M", "IKEA"],
        pharmacies: &["APOTHEKE AM MARKT", "ROSSMANN"],
        fuel: &["ARAL", "JET TANKSTELLE"],
        hotels: &["MOTEL ONE", "ADINA HOTEL"],
        online: &["AMAZON.DE", "ZALANDO", "LIEFERANDO"],
        employer: "Rheinwerk GmbH",
        landlord: "Vonovia SE",
        client: "Nordlicht Medien GmbH",
        utilities: [
            "Stadtwerke Energie",
            "Telekom Deutschland",
            "Wasserwerke",
            "Allianz Hausrat",
        ],
    },
    Market {
        country: CountryCode::from_static("FR"),
        currency: EUR,
        cities: &["PARIS", "LYON", "BORDEAUX"],
        groceries: &["CARREFOUR", "MONOPRIX", "FRANPRIX", "LECLERC"],
        restaurants: &["LE RELAIS", "BOUILLON CHARTIER", "BISTRO REGENT"],
        cafes: &["PAUL", "COLUMBUS CAFE", "BOULANGERIE"],
        transport: &["RATP", "SNCF", "G7 TAXI"],
        shops: &["FNAC", "DECATHLON", "GALERIES LAFAYETTE"],
        pharmacies: &["PHARMACIE CENTRALE", "PHARMACIE DU MARCHE"],
        fuel: &["TOTALENERGIES", "ESSO"],
        hotels: &["IBIS", "HOTEL MERCURE"],
        online: &["AMAZON.FR", "CDISCOUNT", "DEEZER"],
        employer: "Atelier Lumiere SAS",
        landlord: "Foncia Gestion",
        client: "Studio Marais SARL",
        utilities: ["EDF", "Orange", "Eau de Paris", "MAIF Habitation"],
    },
    Market {
        country: CountryCode::from_static("PL"),
        currency: PLN,
        cities: &["WARSZAWA", "KRAKOW", "GDANSK"],
        groceries: &["BIEDRONKA", "ZABKA", "LIDL PL", "CARREFOUR EXPRESS"],
        restaurants: &["PIERROGERIA", "BAR MLECZNY", "PIZZA HUT"],
        cafes: &["STARBUCKS", "COSTA COFFEE", "GREEN CAFFE NERO"],
        transport: &["ZTM WARSZAWA", "PKP INTERCITY", "BOLT"],
        shops: &["EMPIK", "RESERVED", "ROSSMANN", "MEDIA EXPERT"],
        pharmacies: &["APTEKA DOZ", "APTEKA GEMINI"],
        fuel: &["ORLEN", "CIRCLE K"],
        hotels: &["HOTEL POLONIA", "IBIS BUDGET"],
        online: &["ALLEGRO", "PYSZNE.PL", "ZALANDO PL"],
        employer: "Wisla Software sp. z o.o.",
        landlord: "Mieszkania Plus sp. z o.o.",
        client: "Baltyk Studio sp. z o.o.",
        utilities: ["PGE Obrot", "Orange Polska", "MPWiK", "PZU Dom"],
    },
    Market {
        country: CountryCode::from_static("ES"),
        currency: EUR,
        cities: &["MADRID", "BARCELONA", "VALENCIA"],
        groceries: &["MERCADONA", "DIA", "CARREFOUR MARKET", "EROSKI"],
        restaurants: &["TAPAS 24", "VIPS", "CASA LUCIO"],
        cafes: &["CAFE DE ORIENTE", "GRANIER", "STARBUCKS"],
        transport: &["METRO DE MADRID", "RENFE", "CABIFY"],
        shops: &["EL CORTE INGLES", "ZARA", "DECATHLON"],
        pharmacies: &["FARMACIA CENTRAL", "FARMACIA SOL"],
        fuel: &["REPSOL", "CEPSA"],
        hotels: &["NH HOTEL", "MELIA"],
        online: &["AMAZON.ES", "GLOVO", "WALLAPOP"],
        employer: "Soluciones Sol SL",
        landlord: "Alquileres Centro SL",
        client: "Estudio Levante SL",
        utilities: ["Iberdrola", "Movistar", "Canal de Isabel II", "Mapfre Hogar"],
    },
    Market {
        country: CountryCode::from_static("US"),
        currency: USD,
        cities: &["NEW YORK", "SAN FRANCISCO", "CHICAGO"],
        groceries: &["WHOLE FOODS", "TRADER JOE'S", "SAFEWAY"],
        restaurants: &["SHAKE SHACK", "CHIPOTLE", "JOE'S PIZZA"],
        cafes: &["STARBUCKS", "BLUE BOTTLE COFFEE", "DUNKIN"],
        transport: &["MTA NYCT", "LYFT RIDE", "UBER TRIP"],
        shops: &["TARGET", "BEST BUY", "MACY'S"],
        pharmacies: &["CVS PHARMACY", "WALGREENS"],
        fuel: &["CHEVRON", "EXXONMOBIL"],
        hotels: &["HILTON", "ACE HOTEL"],
        online: &["APPLE.COM/BILL", "GITHUB", "DIGITALOCEAN"],
        employer: "Northwind LLC",
        landlord: "Northwind Properties",
        client: "Northwind LLC",
        utilities: ["Con Edison", "Verizon", "City Water", "Lemonade"],
    },
    Market {
        country: CountryCode::from_static("CH"),
        currency: CHF,
        cities: &["ZUERICH", "GENEVE", "BERN"],
        groceries: &["MIGROS", "COOP", "DENNER"],
        restaurants: &["ZEUGHAUSKELLER", "TIBITS", "HILTL"],
        cafes: &["SPRUENGLI", "CAFE AUTOMAT"],
        transport: &["SBB CFF FFS", "ZVV", "TAXI 444"],
        shops: &["MANOR", "GLOBUS", "JELMOLI"],
        pharmacies: &["AMAVITA APOTHEKE", "SUN STORE"],
        fuel: &["AVIA", "MIGROL"],
        hotels: &["HOTEL SCHWEIZERHOF", "25HOURS HOTEL"],
        online: &["DIGITEC GALAXUS", "ZALANDO CH", "SWISSCOM SHOP"],
        employer: "Alpenblick AG",
        landlord: "Livit AG",
        client: "Matterhorn Design GmbH",
        utilities: ["EWZ", "Swisscom", "Wasserversorgung", "Mobiliar"],
    },
    Market {
        country: CountryCode::from_static("IT"),
        currency: EUR,
        cities: &["ROMA", "MILANO", "FIRENZE"],
        groceries: &["ESSELUNGA", "CONAD", "COOP ITALIA"],
        restaurants: &["DA ENZO", "TRATTORIA MARIO", "OSTERIA ROMANA"],
        cafes: &["BAR SANT'EUSTACHIO", "CAFFE GRECO"],
        transport: &["ATAC ROMA", "TRENITALIA", "ITALO"],
        shops: &["LA RINASCENTE", "COIN", "FELTRINELLI"],
        pharmacies: &["FARMACIA COMUNALE"],
        fuel: &["ENI", "Q8"],
        hotels: &["HOTEL ARTEMIDE", "STARHOTELS"],
        online: &["AMAZON.IT", "YOOX", "JUST EAT IT"],
        employer: "Tevere Sistemi Srl",
        landlord: "Immobiliare Roma Srl",
        client: "Arno Studio Srl",
        utilities: ["Enel Energia", "TIM", "Acea", "UnipolSai Casa"],
    },
];

/// The market of a country the sandbox knows (the first one otherwise).
pub fn market(country: CountryCode) -> &'static Market {
    MARKETS
        .iter()
        .find(|m| m.country == country)
        .unwrap_or(&MARKETS[0])
}

/// Countries a trip spending `currency` goes to.
pub fn countries_of(currency: CurrencyCode) -> &'static [&'static str] {
    match currency.as_str() {
        "USD" => &["US"],
        "GBP" => &["GB"],
        "CHF" => &["CH"],
        "PLN" => &["PL"],
        _ => &["FR", "ES", "IT", "DE"],
    }
}
